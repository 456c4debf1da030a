"""The queue side: submitting, claiming, leases, releasing and requeueing runs, queue
limits and figures.

Claims lock what they read: the limits of the queues claimed from (``FOR UPDATE``) and
candidate runs (``FOR UPDATE SKIP LOCKED``; SQLite ignores both and relies on the claim's
``BEGIN IMMEDIATE``). ``CLAIM_PENDING`` and ``RENEW`` run as executemany, one parameter
set per run.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Select,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from ..schema import queue_pauses, queues, runs, steps
from .common import constant


def _resume_position() -> ColumnElement[Any]:
    """The first position a resumed run executes rather than replays: its first step
    not completed or skipped, else the one after its last step."""
    # Literals, not parameters: the claim runs this as an executemany.
    unfinished = select(func.min(steps.c.position)).where(
        steps.c.run_id == runs.c.id, steps.c.status != constant("completed"),
        steps.c.status != constant("skipped"))
    after_last = select(func.coalesce(func.max(steps.c.position), 0) + 1).where(
        steps.c.run_id == runs.c.id)
    return func.coalesce(unfinished.scalar_subquery(), after_last.scalar_subquery())


RESUME_POSITION = _resume_position()
# Claim a pending run (``cid``) for a worker; one that ran before resumes.
CLAIM_PENDING = (
    update(runs).where(runs.c.id == bindparam("cid"), runs.c.status == "pending")
    .values(status="running", lease_token=bindparam("tok"), executor=bindparam("worker"),
            lease_expires_at=bindparam("expires"),
            started_at=func.coalesce(runs.c.started_at, bindparam("now")),
            resumed_at=case((runs.c.started_at.is_(None), None), else_=bindparam("now")),
            resumed_from_position=case((runs.c.started_at.is_(None),
                                        runs.c.resumed_from_position),
                                       else_=RESUME_POSITION)))
# Extend the lease of a run (``cid``) still held with token ``tok``.
RENEW = (update(runs).where(runs.c.id == bindparam("cid"),
                            runs.c.lease_token == bindparam("tok"))
         .values(lease_expires_at=bindparam("expires")))
# (name, concurrency, key concurrency) of every queue that has limits.
QUEUE_LIMITS = select(queues.c.name, queues.c.concurrency, queues.c.key_concurrency)


# -- submitting ----------------------------------------------------------------------
def run_with_key(owner: str, idempotency_key: str | None) -> Select[Any]:
    """The id of the owner's run with this idempotency key."""
    return select(runs.c.id).where(runs.c.owner == owner,
                                   runs.c.idempotency_key == idempotency_key)


# -- claiming ------------------------------------------------------------------------
def paused_among(names: list[str]) -> Select[Any]:
    """Which of these queues are paused."""
    return select(queue_pauses.c.name).where(queue_pauses.c.name.in_(names))


PAUSED_QUEUES = select(queue_pauses.c.name, queue_pauses.c.paused_at, queue_pauses.c.reason)

# Pausing a paused queue keeps its first pause (when and why).
PAUSE_QUEUE = text("""
INSERT INTO flowledger_queue_pauses (name, paused_at, reason) VALUES (:name, :now, :reason)
ON CONFLICT (name) DO NOTHING
""")


def resume_queue(name: str) -> Delete:
    return delete(queue_pauses).where(queue_pauses.c.name == name)


def lock_limits(names: list[str]) -> Select[Any]:
    """The limits of these queues, their rows locked for the claim."""
    return select(queues).where(queues.c.name.in_(names)).with_for_update()


def expired_leases(names: list[str], now: int, limit: int) -> Select[Any]:
    """(id, recovery attempts) of running runs whose lease expired, oldest first."""
    return (select(runs.c.id, runs.c.recovery_attempts)
            .where(runs.c.status == "running", runs.c.queue.in_(names),
                   runs.c.lease_expires_at < now)
            .order_by(runs.c.lease_expires_at).limit(limit)
            .with_for_update(skip_locked=True))


def reclaim(run_id: uuid.UUID, token: str, worker: str, expires_at: int,
            now: int) -> Update:
    """Take over a run whose lease expired: it resumes at its first unfinished step."""
    return update(runs).where(runs.c.id == run_id).values(
        lease_token=token, executor=worker, lease_expires_at=expires_at,
        recovery_attempts=runs.c.recovery_attempts + 1, resumed_at=now,
        resumed_from_position=RESUME_POSITION)


def running_per_queue(names: list[str]) -> Select[Any]:
    """(queue, runs running) of these queues."""
    return (select(runs.c.queue, func.count())
            .where(runs.c.status == "running", runs.c.queue.in_(names))
            .group_by(runs.c.queue))


def pending_candidates(names: list[str], now: int, window: int) -> Select[Any]:
    """Up to ``window`` pending runs that are due, by priority (highest first) then age."""
    return (select(runs.c.id, runs.c.queue, runs.c.concurrency_key, runs.c.started_at,
                   runs.c.forked_from)
            .where(runs.c.status == "pending", runs.c.queue.in_(names),
                   or_(runs.c.scheduled_at.is_(None), runs.c.scheduled_at <= now))
            .order_by(runs.c.priority.desc(), runs.c.id).limit(window)
            .with_for_update(skip_locked=True))


def running_per_key(queue_names: list[str], keys: list[str]) -> Select[Any]:
    """(queue, concurrency key, runs running) for these queues and keys."""
    return (select(runs.c.queue, runs.c.concurrency_key, func.count())
            .where(runs.c.status == "running", runs.c.queue.in_(queue_names),
                   runs.c.concurrency_key.in_(keys))
            .group_by(runs.c.queue, runs.c.concurrency_key))


def next_due(names: list[str], now: int) -> Select[Any]:
    """When the next delayed pending run of these queues becomes due."""
    return select(func.min(runs.c.scheduled_at)).where(
        runs.c.status == "pending", runs.c.queue.in_(names), runs.c.scheduled_at > now)


def claimed_runs(run_ids: list[uuid.UUID]) -> Select[Any]:
    """The runs a claim took, whole."""
    return select(runs).where(runs.c.id.in_(run_ids))


# -- leases --------------------------------------------------------------------------
def held_tokens(run_ids: list[uuid.UUID]) -> Select[Any]:
    """(id, lease token) of these runs that are running."""
    return select(runs.c.id, runs.c.lease_token).where(runs.c.id.in_(run_ids),
                                                       runs.c.status == "running")


def release(run_id: uuid.UUID, token: str, not_before: int | None = None) -> Update:
    """Give a run held with ``token`` back to its queue, claimable at once (or from
    ``not_before``)."""
    return update(runs).where(
        runs.c.id == run_id, runs.c.lease_token == token,
        runs.c.status == "running").values(
        status="pending", lease_token=None, executor=None, lease_expires_at=None,
        scheduled_at=not_before)


def requeue(run_id: uuid.UUID, owner: str | None, queue: str, resumed_from: int) -> Update:
    """Put a failed or cancelled run (the owner's; None: anyone's) back in a queue."""
    condition = [runs.c.id == run_id, runs.c.status.in_(("failed", "cancelled"))]
    if owner is not None:
        condition.append(runs.c.owner == owner)
    return update(runs).where(*condition).values(
        status="pending", queue=queue, lease_token=None, executor=None,
        lease_expires_at=None, scheduled_at=None, completed_at=None, error=None,
        output=None, resumed_from_position=resumed_from)


# -- queue limits and figures ----------------------------------------------------------
def delete_limits(name: str) -> Delete:
    return delete(queues).where(queues.c.name == name)


def insert_limits(name: str, concurrency: int | None, key_concurrency: int | None,
                  now: int, rate: tuple[int, int] | None = None,
                  key_rate: tuple[int, int] | None = None) -> Insert:
    """A queue's limits; rates are (units, period in microseconds)."""
    return insert(queues).values(
        name=name, concurrency=concurrency, key_concurrency=key_concurrency, updated_at=now,
        rate_units=rate[0] if rate else None, rate_period_us=rate[1] if rate else None,
        key_rate_units=key_rate[0] if key_rate else None,
        key_rate_period_us=key_rate[1] if key_rate else None)


def depths(now: int) -> Select[Any]:
    """(queue, status, delayed 0/1, count) of pending and running queued runs."""
    delayed = case((runs.c.scheduled_at > now, 1), else_=0)
    return (select(runs.c.queue, runs.c.status, delayed, func.count())
            .where(runs.c.queue.is_not(None), runs.c.status.in_(["pending", "running"]))
            .group_by(runs.c.queue, runs.c.status, delayed))


def finished_since(since: int) -> Select[Any]:
    """(queue, status, count) of queued runs that ended at or after ``since``."""
    return (select(runs.c.queue, runs.c.status, func.count())
            .where(runs.c.queue.is_not(None), runs.c.completed_at >= since)
            .group_by(runs.c.queue, runs.c.status))

