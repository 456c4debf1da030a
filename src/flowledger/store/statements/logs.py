"""What step attempts logged (``flowledger_step_logs``): written with an attempt's outcome,
read per run or per step."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from ..schema import step_logs, steps

# The records of the attempt the step row describes now (its number comes from the row,
# the durable one), fenced like every step write. Re-recording it (a replayed spool)
# changes nothing.
RECORD_LOGS = """
INSERT INTO flowledger_step_logs (run_id, position, attempt, records, dropped, written_at)
SELECT run_id, position, attempts, :records, :dropped, CAST(:now AS BIGINT)
FROM flowledger_steps
WHERE run_id = :run_id AND position = :position
  AND EXISTS (SELECT 1 FROM flowledger_runs WHERE id = :run_id AND lease_token = :token)
ON CONFLICT (run_id, position, attempt) DO NOTHING
"""


def logs_of(run_id: uuid.UUID, position: int | None) -> Select[Any]:
    """(position, step name, attempt, records, dropped) of a run's logged attempts, in
    step then attempt order; one step's with ``position``."""
    query = (select(step_logs.c.position, steps.c.name, step_logs.c.attempt,
                    step_logs.c.records, step_logs.c.dropped)
             .join(steps, (steps.c.run_id == step_logs.c.run_id)
                   & (steps.c.position == step_logs.c.position))
             .where(step_logs.c.run_id == run_id)
             .order_by(step_logs.c.position, step_logs.c.attempt))
    if position is not None:
        query = query.where(step_logs.c.position == position)
    return query
