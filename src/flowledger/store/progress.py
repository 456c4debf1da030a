"""Light reads of a run's progress, polled by event streams (no payload columns)."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from .schema import runs, steps


@dataclass(frozen=True, slots=True)
class StepProgress:
    position: int
    name: str
    status: str
    attempts: int
    started_at: int | None
    completed_at: int | None
    child_run_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class RunProgress:
    id: uuid.UUID
    status: str
    started_at: int | None
    completed_at: int | None
    resumed_at: int | None
    resumed_from_position: int | None
    steps: tuple[StepProgress, ...]


_STEP_COLUMNS = [steps.c[name] for name in StepProgress.__slots__]


class ProgressStoreMixin:
    """Mixed into ``SqlStore``."""

    if TYPE_CHECKING:
        def _read(self) -> contextlib.AbstractContextManager[Connection]: ...

    def run_progress(self, run_id: uuid.UUID, owner: str | None) -> RunProgress | None:
        query = select(runs.c.status, runs.c.started_at, runs.c.completed_at,
                       runs.c.resumed_at, runs.c.resumed_from_position).where(runs.c.id == run_id)
        if owner is not None:
            query = query.where(runs.c.owner == owner)
        with self._read() as conn:
            run = conn.execute(query).first()
            if run is None:
                return None
            found = conn.execute(select(*_STEP_COLUMNS).where(steps.c.run_id == run_id)
                                 .order_by(steps.c.position)).all()
        return RunProgress(run_id, run.status, run.started_at, run.completed_at,
                           run.resumed_at, run.resumed_from_position,
                           tuple(StepProgress(*row) for row in found))


__all__ = ["ProgressStoreMixin", "RunProgress", "StepProgress"]
