"""Run writes: creating runs and their tags, finishing, cancelling and taking them over.

A run's step totals are counted by the statement that ends it (``TOTALS``). The
statements that also run as compiled driver SQL on the raw hot path
(``INSERT_RUN_NAMED``, ``FINISH_RUN_GUARDED``) spell their constants as literals.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ScalarSelect, Select, Update, bindparam, func, insert, select, update

from ..dialects import Backend
from ..schema import run_tags, runs, steps
from .common import constant

# Unfinished runs: cancelling reaches them, and purges keep their trees.
ACTIVE = ("pending", "running", "paused", "waiting")
# What can be paused (a waiting run rests paused, then waits again once resumed).
PAUSABLE = ("pending", "running", "waiting")
# What a resume clears of a pause.
NOT_PAUSED = {"paused_at": None, "pause_reason": None, "paused_by": None}


def _count_steps(status: str | None = None) -> ScalarSelect[Any]:
    query = select(func.count()).select_from(steps).where(
        steps.c.run_id == bindparam("rid", type_=runs.c.id.type))
    if status is not None:
        query = query.where(steps.c.status == constant(status))
    return query.scalar_subquery()


# The run's step counts, as the values that end a run set them.
TOTALS = {"total_steps": _count_steps(), "completed_steps": _count_steps("completed"),
          "failed_steps": _count_steps("failed"), "skipped_steps": _count_steps("skipped")}
# The run a statement is about, as parameter ``rid``.
RUN_ID = bindparam("rid", type_=runs.c.id.type)
INSERT_RUN = insert(runs)
INSERT_TAGS = insert(run_tags)
# The columns a new run sets, in the one-statement create of the raw hot path.
RUN_INSERT_COLUMNS = ("id", "workflow", "version", "entrypoint", "owner", "status",
                      "serializer", "inputs", "created_at", "started_at", "deadline_at",
                      "parent_id", "forked_from", "forked_from_position", "executor",
                      "lease_token", "queue", "priority", "scheduled_at", "idempotency_key",
                      "concurrency_key", "traceparent")
INSERT_RUN_NAMED = insert(runs).values({name: bindparam(name, type_=runs.c[name].type)
                                        for name in RUN_INSERT_COLUMNS})
# The status of a run still held with lease token ``tok``.
OWNED_STATUS = select(runs.c.status).where(runs.c.id == RUN_ID,
                                           runs.c.lease_token == bindparam("tok"))
# Steps still running when their run ends: failed (interrupted) with error ``why``.
INTERRUPT_STEPS = (update(steps).where(steps.c.run_id == RUN_ID, steps.c.status == "running")
                   .values(status="failed", completed_at=bindparam("now"),
                           error=bindparam("why")))
# The step totals of a run cancelled while its execution was finishing it.
UPDATE_TOTALS = update(runs).where(runs.c.id == RUN_ID).values(**TOTALS)
# A cancelled run's sleep or wait it was suspended at ends with it (error ``why``).
END_WAITS = (update(steps).where(steps.c.run_id == RUN_ID, steps.c.status == "waiting")
             .values(status="failed", completed_at=bindparam("now"), error=bindparam("why")))
CANCEL_RUN = (update(runs).where(runs.c.id == RUN_ID, runs.c.status.in_(ACTIVE))
              .values(status="cancelled", completed_at=bindparam("now"), **TOTALS))
FINISH_RUN = update(runs).where(runs.c.id == RUN_ID).values(
    status=bindparam("new_status"), output=bindparam("new_output"),
    error=bindparam("new_error"), completed_at=bindparam("now"), **TOTALS)
# Finishing a run its execution still holds (the common, completed case: one statement).
FINISH_RUN_GUARDED = FINISH_RUN.where(runs.c.lease_token == bindparam("tok"),
                                      runs.c.status == constant("running"))


def insert_unless_duplicate(backend: Backend) -> Any:
    """An INSERT of a run that does nothing when its owner already used its idempotency
    key (the dialect's hook); it returns the id of the row it inserted."""
    return backend.insert_unless_duplicate(
        runs, ["owner", "idempotency_key"], runs.c.idempotency_key.is_not(None),
    ).returning(runs.c.id)


def find_run(run_id: uuid.UUID) -> Select[Any]:
    """The id of this run, if it is recorded."""
    return select(runs.c.id).where(runs.c.id == run_id)


def status_of(run_id: uuid.UUID, owner: str | None) -> Select[Any]:
    """The status of a run, if the owner (None: anyone) can see it."""
    query = select(runs.c.status).where(runs.c.id == run_id)
    if owner is not None:
        query = query.where(runs.c.owner == owner)
    return query


def pause(run_id: uuid.UUID, owner: str | None, now: int, reason: str | None,
          by: str | None) -> Update:
    """Pause a pending or running run (the owner's; None: anyone's): it is claimed no
    more, and its execution stops before its next step (steps only begin while a run
    is ``running``)."""
    condition = [runs.c.id == run_id, runs.c.status.in_(PAUSABLE)]
    if owner is not None:
        condition.append(runs.c.owner == owner)
    return update(runs).where(*condition).values(status="paused", paused_at=now,
                                                  pause_reason=reason, paused_by=by)


# The execution of a paused run lets go of it: no executor, no lease, resumable anywhere.
RELEASE_PAUSED = (update(runs).where(runs.c.id == RUN_ID, runs.c.lease_token == bindparam("tok"),
                                     runs.c.status == "paused")
                  .values(lease_token=None, executor=None, lease_expires_at=None))


def unpause_to_queue(run_id: uuid.UUID, queue: str) -> Update:
    """A paused run goes back to a queue (``pending``), claimable at once."""
    return update(runs).where(runs.c.id == run_id, runs.c.status == "paused").values(
        status="pending", queue=queue, lease_token=None, executor=None,
        lease_expires_at=None, scheduled_at=None, **NOT_PAUSED)


def active_children(parent_id: uuid.UUID) -> Select[Any]:
    """The ids of a run's children still pending or running."""
    return select(runs.c.id).where(runs.c.parent_id == parent_id, runs.c.status.in_(ACTIVE))


def take_over(run_id: uuid.UUID, expected_token: str | None, new_token: str,
              executor: str, now: int, resumed_from: int | None) -> Update:
    """Claim a run for a new execution in this process: compare-and-set on its token."""
    return (update(runs)
            .where(runs.c.id == run_id,
                   runs.c.lease_token.is_not_distinct_from(expected_token))
            .values(status="running", lease_token=new_token, executor=executor,
                    # Held by this process now, not by a worker's lease: workers must
                    # not take it over; recover() can, if this process dies.
                    lease_expires_at=None,
                    recovery_attempts=runs.c.recovery_attempts + 1, resumed_at=now,
                    resumed_from_position=resumed_from,
                    started_at=func.coalesce(runs.c.started_at, now),
                    completed_at=None, error=None, output=None, **NOT_PAUSED))

