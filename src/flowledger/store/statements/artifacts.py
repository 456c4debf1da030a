"""Artifact references: which content a run stores under which key.

Writes fenced by an execution's lease token are in ``steps.py`` (``SAVE_ARTIFACT``);
these are the writes from outside an execution and the reads.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Delete, Insert, Select, delete, insert, select

from ..rows import ArtifactRow
from ..schema import artifacts

# The columns of an ArtifactRow, in its field order.
ARTIFACT_COLUMNS = [artifacts.c[name] for name in ArtifactRow.__slots__]


def vars_of(row: ArtifactRow) -> dict[str, Any]:
    """An artifact row as column values."""
    return {name: getattr(row, name) for name in ArtifactRow.__slots__}


def delete_artifact(run_id: uuid.UUID, key: str) -> Delete:
    return delete(artifacts).where(artifacts.c.run_id == run_id, artifacts.c.key == key)


def insert_artifact(row: ArtifactRow) -> Insert:
    return insert(artifacts).values(**vars_of(row))


def artifact(run_id: uuid.UUID, key: str) -> Select[Any]:
    return select(*ARTIFACT_COLUMNS).where(artifacts.c.run_id == run_id,
                                           artifacts.c.key == key)


def artifacts_of(run_id: uuid.UUID, prefix: str) -> Select[Any]:
    """A run's artifacts whose key starts with ``prefix`` ("": all), by key."""
    query = select(*ARTIFACT_COLUMNS).where(artifacts.c.run_id == run_id)
    if prefix:
        query = query.where(artifacts.c.key.startswith(prefix, autoescape=True))
    return query.order_by(artifacts.c.key)


def referenced(digests: list[str]) -> Select[Any]:
    """The (owner, digest) pairs among these digests that some artifact references."""
    return select(artifacts.c.owner, artifacts.c.digest).where(
        artifacts.c.digest.in_(digests)).distinct()
