"""Attempt history and fork copies.

A step row describes the step's latest attempt; ``flowledger_attempts`` keeps the others.
The attempt a step fails is recorded by the fenced statement ``RECORD_FAILED_ATTEMPT``
in ``steps.py``; attempts interrupted by a takeover or by the run ending are recorded here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Select, Uuid, bindparam, insert, select, text

from ..rows import AttemptRow
from ..schema import artifacts, attempts, context, steps

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
# A fork's copy of its source's context values (executemany).
INSERT_CONTEXT = insert(context)


def attempts_of(run_ids: Sequence[uuid.UUID]) -> Select[Any]:
    """The recorded attempts of these runs, in run, position and attempt order."""
    return (select(*ATTEMPT_COLUMNS).where(attempts.c.run_id.in_(list(run_ids)))
            .order_by(attempts.c.run_id, attempts.c.position, attempts.c.attempt))


def fork_copies(source: uuid.UUID, fork: uuid.UUID, before: int) -> list[Insert]:
    """Copying into a fork the source's steps before ``before``, their attempts, and the
    artifacts those steps saved (INSERT ... SELECT, the fork's id as a parameter)."""
    copies = []
    for table in (steps, attempts):
        cols = [c.name for c in table.columns if c.name != "run_id"]
        rows = select(bindparam("fork_id", fork, type_=table.c.run_id.type),
                      *[table.c[name] for name in cols]).where(
            table.c.run_id == source, table.c.position < before)
        copies.append(insert(table).from_select(["run_id", *cols], rows))
    art_cols = [c.name for c in artifacts.columns if c.name != "run_id"]
    art_rows = select(bindparam("fork_id", fork, type_=artifacts.c.run_id.type),
                      *[artifacts.c[name] for name in art_cols]).where(
        artifacts.c.run_id == source, artifacts.c.position >= 1,
        artifacts.c.position < before)
    copies.append(insert(artifacts).from_select(["run_id", *art_cols], art_rows))
    return copies


def step_contexts_before(source: uuid.UUID, before: int) -> Select[Any]:
    """(position, context JSON) of the source's steps before ``before`` that set any."""
    return (select(steps.c.position, steps.c.context)
            .where(steps.c.run_id == source, steps.c.position < before,
                   steps.c.context.is_not(None)).order_by(steps.c.position))


def context_set_before(source: uuid.UUID, before: int) -> Select[Any]:
    """(name, value, position) of the source's context values last set by a step before
    ``before`` (position 0, the workflow body, is left out)."""
    return (select(context.c.name, context.c.value, context.c.position)
            .where(context.c.run_id == source, context.c.position > 0,
                   context.c.position < before))
