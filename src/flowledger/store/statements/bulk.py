"""Bulk loads and deletes: restoring archives (and filling benchmark stores), purging runs.

``among`` (``common.py``) is ``= ANY(array)`` on PostgreSQL: one parameter however many
runs are deleted at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Delete, Select, Table, delete, insert, select

from ..schema import (
    artifacts,
    attempts,
    context,
    run_events,
    run_tags,
    runs,
    step_logs,
    steps,
    usage,
)
from .common import among

INSERT_RUNS = insert(runs)
INSERT_STEPS = insert(steps)


def _copy_from_stdin(table: Table, columns: Sequence[str]) -> str:
    return f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"


def copy_runs(columns: Sequence[str]) -> str:
    """PostgreSQL's COPY of run rows with these columns, streamed by the driver."""
    return _copy_from_stdin(runs, columns)


def copy_steps(columns: Sequence[str]) -> str:
    """PostgreSQL's COPY of step rows with these columns, streamed by the driver."""
    return _copy_from_stdin(steps, columns)


def contents_of_runs(ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    """The (owner, digest) of the content these runs' artifacts reference."""
    return (select(artifacts.c.owner, artifacts.c.digest)
            .where(among(artifacts.c.run_id, ids, dialect)).distinct())


def delete_records(ids: list[uuid.UUID], dialect: str) -> list[Delete]:
    """Deleting what is recorded about these runs' steps, except the steps themselves."""
    return [delete(table).where(among(table.c.run_id, ids, dialect))
            for table in (artifacts, usage, context, attempts, run_events, step_logs)]


def delete_steps(ids: list[uuid.UUID], dialect: str) -> Delete:
    return delete(steps).where(among(steps.c.run_id, ids, dialect))


def delete_runs(ids: list[uuid.UUID], dialect: str) -> list[Delete]:
    """Deleting the runs with their tags (after ``delete_records`` and ``delete_steps``)."""
    return [delete(run_tags).where(among(run_tags.c.run_id, ids, dialect)),
            delete(runs).where(among(runs.c.id, ids, dialect))]
