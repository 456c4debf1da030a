"""Light reads of a run's progress, polled by event streams (no payload columns)."""

from __future__ import annotations

import dataclasses
import uuid

from . import history
from .core import StoreCore
from .rows import AttemptRow, RunProgress, StepProgress
from .sealing import run_aad, step_aad
from .statements import progress as progress_sql


class StoreProgress(StoreCore):
    """Progress reads; a part of ``SqlStore``."""

    def run_progress(self, run_id: uuid.UUID, owner: str | None) -> RunProgress | None:
        query = progress_sql.run_progress(run_id, owner)
        with self._read() as conn:
            run = conn.execute(query).first()
            if run is None:
                return None
            found = [StepProgress(*row)
                     for row in conn.execute(progress_sql.steps_progress(run_id))]
            tried: list[AttemptRow] = []
            if any(step.attempts > 1 or step.status == "running" for step in found):
                tried = history.attempts_of(conn, [run_id]).get(run_id, [])
        paused = run.status == "paused"
        for attempt in tried:
            self.sealing.attempt_row(attempt)
        if self.sealing.active:
            found = [dataclasses.replace(step, error=self.sealing.open(
                step.error, step_aad("error", run_id, step.position))) for step in found]
        error = (self.sealing.open(run.error, run_aad("error", run_id))
                 if run.status == "failed" else None)
        return RunProgress(run_id, run.status, run.started_at, run.completed_at,
                           run.resumed_at, run.resumed_from_position, tuple(found),
                           tuple(tried), error,
                           run.paused_at if paused else None,
                           run.pause_reason if paused else None)


__all__ = ["RunProgress", "StepProgress", "StoreProgress"]
