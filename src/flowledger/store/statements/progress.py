"""Light reads of a run's progress, polled by event streams (no payload columns)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from ..rows import StepProgress
from ..schema import runs, steps

# The columns of a StepProgress, in its field order.
STEP_PROGRESS_COLUMNS = [steps.c[name] for name in StepProgress.__slots__]


def run_progress(run_id: uuid.UUID, owner: str | None) -> Select[Any]:
    """(status, started, completed, resumed, resumed from, error, paused at, pause
    reason) of a run, if the owner (None: anyone) can see it."""
    query = select(runs.c.status, runs.c.started_at, runs.c.completed_at,
                   runs.c.resumed_at, runs.c.resumed_from_position,
                   runs.c.error, runs.c.paused_at, runs.c.pause_reason
                   ).where(runs.c.id == run_id)
    if owner is not None:
        query = query.where(runs.c.owner == owner)
    return query


def steps_progress(run_id: uuid.UUID) -> Select[Any]:
    """The StepProgress columns of a run's steps, by position."""
    return (select(*STEP_PROGRESS_COLUMNS).where(steps.c.run_id == run_id)
            .order_by(steps.c.position))
