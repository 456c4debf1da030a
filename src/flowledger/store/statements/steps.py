"""The statements of the step hot path, written once for both dialects.

Each write is a single statement, fenced by the run's lease token in its own WHERE
clause; ``{uuid}`` and ``{float}`` are the dialect's type names for parameter casts.
The store formats them once when it opens and runs them on raw driver connections
(``driver_sql`` renders their ``:name`` parameters for drivers that want another style).
Steps that start a child run begin through SQLAlchemy instead (``begin_child_step``).
"""

from __future__ import annotations

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import Dialect

from ..schema import runs

BEGIN_STEP = """
INSERT INTO flowledger_steps
    (run_id, position, name, status, attempts, input, started_at, child_run_id)
SELECT CAST(:run_id AS {uuid}), :position, :name, 'running', 1, :input, :now,
       CAST(:child_run_id AS {uuid})
WHERE EXISTS (SELECT 1 FROM flowledger_runs
              WHERE id = :run_id AND status = 'running' AND lease_token = :token)
ON CONFLICT (run_id, position) DO UPDATE SET
    status = 'running', attempts = flowledger_steps.attempts + 1,
    started_at = excluded.started_at, completed_at = NULL
"""

FINISH_STEP = """
UPDATE flowledger_steps
SET status = :status, output = :output, error = :error, completed_at = :now,
    context = :context, redacted = :redacted
WHERE run_id = :run_id AND position = :position
  AND EXISTS (SELECT 1 FROM flowledger_runs WHERE id = :run_id AND lease_token = :token)
"""

# A failed attempt, copied from the step row it is about to leave (its number and start
# come from the row, so they are the durable ones). ``retry_at`` is set when another
# attempt follows. Re-recording the same attempt (a replayed spool) changes nothing.
RECORD_FAILED_ATTEMPT = """
INSERT INTO flowledger_attempts
    (run_id, position, attempt, status, started_at, completed_at, error, retry_at)
SELECT run_id, position, attempts, 'failed', started_at, CAST(:now AS BIGINT), :error,
       CAST(:retry_at AS BIGINT)
FROM flowledger_steps
WHERE run_id = :run_id AND position = :position
  AND EXISTS (SELECT 1 FROM flowledger_runs WHERE id = :run_id AND lease_token = :token)
ON CONFLICT (run_id, position, attempt) DO NOTHING
"""

RECORD_USAGE = """
INSERT INTO flowledger_usage
    (run_id, position, model, provider, input_tokens, output_tokens, cached_input_tokens,
     reasoning_tokens, cost_usd, prices_version, recorded_at, cache_hit)
SELECT CAST(:run_id AS {uuid}), :position, CAST(:model AS VARCHAR(200)), :provider,
       :input_tokens, :output_tokens,
       :cached_input_tokens, :reasoning_tokens, CAST(:cost_usd AS {float}), :prices_version,
       :recorded_at, :cache_hit
WHERE EXISTS (SELECT 1 FROM flowledger_runs WHERE id = :run_id AND lease_token = :token)
"""


SET_CONTEXT = """
INSERT INTO flowledger_context (run_id, name, value, position, updated_at)
SELECT CAST(:run_id AS {uuid}), :name, :value, :position, :now
WHERE EXISTS (SELECT 1 FROM flowledger_runs WHERE id = :run_id AND lease_token = :token)
ON CONFLICT (run_id, name) DO UPDATE SET
    value = excluded.value, position = excluded.position, updated_at = excluded.updated_at
"""


SAVE_ARTIFACT = """
INSERT INTO flowledger_artifacts
    (run_id, key, owner, digest, size, media_type, position, created_at)
SELECT CAST(:run_id AS {uuid}), :key, :owner, :digest, :size, :media_type, :position, :now
WHERE EXISTS (SELECT 1 FROM flowledger_runs WHERE id = :run_id AND lease_token = :token)
ON CONFLICT (run_id, key) DO UPDATE SET
    digest = excluded.digest, size = excluded.size, media_type = excluded.media_type,
    position = excluded.position, created_at = excluded.created_at
"""


# Idempotent forms of the two non-idempotent writes, for replaying a spool: the attempt
# number is absolute instead of an increment, and a usage record is not inserted twice.
BEGIN_STEP_ABSOLUTE = BEGIN_STEP.replace(
    "'running', 1,", "'running', :attempt,").replace(
    "attempts = flowledger_steps.attempts + 1",
    "attempts = CASE WHEN flowledger_steps.attempts > excluded.attempts "
    "THEN flowledger_steps.attempts ELSE excluded.attempts END")
RECORD_USAGE_ONCE = RECORD_USAGE.replace(
    "WHERE EXISTS", """WHERE NOT EXISTS (SELECT 1 FROM flowledger_usage
                 WHERE run_id = :run_id AND position = :position
                   AND model = CAST(:model AS VARCHAR(200))
                   AND recorded_at = :recorded_at)
  AND EXISTS""")


def driver_sql(sql: str, dialect: Dialect) -> str:
    """Text SQL with its ``:name`` parameters in the driver's own paramstyle."""
    return str(text(sql).compile(dialect=dialect)).strip()


def begin_child_step(uuid_type: str) -> TextClause:
    """``BEGIN_STEP`` as a SQLAlchemy statement, for the begin that also inserts the child
    run in the same transaction (its ids typed, so they bind as on any other statement)."""
    return text(BEGIN_STEP.format(uuid=uuid_type)).bindparams(
        bindparam("run_id", type_=runs.c.id.type),
        bindparam("child_run_id", type_=runs.c.id.type))
