"""Attempt history.

A step row describes the step's latest attempt; ``flowledger_attempts`` keeps the others.
The attempt a step fails is recorded by the fenced statement ``RECORD_FAILED_ATTEMPT``
in ``steps.py``; attempts interrupted by a takeover or by the run ending are recorded here.
"""

from __future__ import annotations

from sqlalchemy import Uuid, bindparam, text

from ..rows import AttemptRow
from ..schema import attempts

# Attempts still marked running when a run is taken over (its process died or lost its
# lease) or ends around them: they were interrupted. ``now`` is NULL when the moment the
# attempt stopped is unknown (a crash).
RECORD_INTERRUPTED_ATTEMPTS = text("""
INSERT INTO flowledger_attempts
    (run_id, position, attempt, status, started_at, completed_at, error, retry_at)
SELECT run_id, position, attempts, 'interrupted', started_at, CAST(:now AS BIGINT), :why,
       CAST(NULL AS BIGINT)
FROM flowledger_steps
WHERE run_id = :rid AND status = 'running'
ON CONFLICT (run_id, position, attempt) DO NOTHING
""").bindparams(bindparam("rid", type_=Uuid()))
# The columns of an AttemptRow, in its field order.
ATTEMPT_COLUMNS = [attempts.c[name] for name in AttemptRow.__slots__]
