"""Retention: policies, the lease of the process applying them, reading whole runs for
archives and writing them back on restore.

Every statement over several runs takes their ids through ``among`` (one array parameter
on PostgreSQL).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Delete, Insert, Select, Update, delete, insert, select, update

from ..rows import EventRow, RetentionPolicyRow
from ..schema import (
    artifacts,
    attempts,
    context,
    leases,
    retention_policies,
    run_events,
    run_tags,
    runs,
    step_logs,
    steps,
    usage,
)
from .common import among

POLICY_COLUMNS = [retention_policies.c[name] for name in RetentionPolicyRow.__slots__]
EVENT_COLUMNS = [run_events.c[name] for name in EventRow.__slots__]
LIST_POLICIES = select(*POLICY_COLUMNS).order_by(retention_policies.c.id)


# -- policies ------------------------------------------------------------------------
def policy(policy_id: str) -> Select[Any]:
    return select(*POLICY_COLUMNS).where(retention_policies.c.id == policy_id)


def insert_policy(row: RetentionPolicyRow) -> Insert:
    return insert(retention_policies).values(
        {name: getattr(row, name) for name in RetentionPolicyRow.__slots__})


def replace_policy(row: RetentionPolicyRow) -> Update:
    """The policy's settings changed (its selector, hence its id, and creation stay)."""
    return (update(retention_policies).where(retention_policies.c.id == row.id)
            .values(keep_us=row.keep_us, archive=row.archive, updated_at=row.updated_at))


def delete_policy(policy_id: str) -> Delete:
    return delete(retention_policies).where(retention_policies.c.id == policy_id)


# -- leases --------------------------------------------------------------------------
def lock_lease(name: str) -> Select[Any]:
    return select(leases.c.token, leases.c.fence, leases.c.expires_at,
                  leases.c.holder).where(leases.c.name == name).with_for_update()


def take_lease(name: str, holder: str, token: str, fence: int, expires_at: int,
               now: int) -> Update:
    return (update(leases).where(leases.c.name == name)
            .values(holder=holder, token=token, fence=fence, expires_at=expires_at,
                    acquired_at=now))


def renew_lease(name: str, token: str, expires_at: int) -> Update:
    return (update(leases).where(leases.c.name == name, leases.c.token == token)
            .values(expires_at=expires_at))


def release_lease(name: str, token: str) -> Update:
    """The lease free at once (expired), its fence kept so the next holding's grows."""
    return (update(leases).where(leases.c.name == name, leases.c.token == token)
            .values(expires_at=0))


def holding(name: str, token: str, fence: int, now: int) -> Select[Any]:
    """The lease row, locked, if this holding still has it (the fencing check)."""
    return (select(leases.c.fence)
            .where(leases.c.name == name, leases.c.token == token, leases.c.fence == fence,
                   leases.c.expires_at > now).with_for_update())


# -- whole runs ----------------------------------------------------------------------
def forks_into(ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    """(fork id, the run it was forked from) of every fork of these runs."""
    return select(runs.c.id, runs.c.forked_from).where(among(runs.c.forked_from, ids, dialect))


def contexts_among(ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    return (select(context.c.run_id, context.c.name, context.c.value, context.c.position,
                   context.c.updated_at)
            .where(among(context.c.run_id, ids, dialect)).order_by(context.c.name))


def artifacts_among(ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    return (select(artifacts.c.run_id, artifacts.c.key, artifacts.c.owner,
                   artifacts.c.digest, artifacts.c.size, artifacts.c.media_type,
                   artifacts.c.position, artifacts.c.created_at)
            .where(among(artifacts.c.run_id, ids, dialect)).order_by(artifacts.c.key))


def logs_among(ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    return (select(step_logs.c.run_id, step_logs.c.position, step_logs.c.attempt,
                   step_logs.c.records, step_logs.c.dropped, step_logs.c.written_at)
            .where(among(step_logs.c.run_id, ids, dialect))
            .order_by(step_logs.c.position, step_logs.c.attempt))


def events_among(ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    return (select(*EVENT_COLUMNS).where(among(run_events.c.run_id, ids, dialect))
            .order_by(run_events.c.id))


def existing(ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    return select(runs.c.id).where(among(runs.c.id, ids, dialect))


INSERT_RUN = insert(runs)
INSERT_TAG = insert(run_tags)
INSERT_ATTEMPT = insert(attempts)
INSERT_STEP = insert(steps)
INSERT_USAGE = insert(usage)
INSERT_CONTEXT = insert(context)
INSERT_ARTIFACT = insert(artifacts)
INSERT_LOGS = insert(step_logs)
INSERT_EVENT = insert(run_events)


def set_revision(run_id: uuid.UUID, revision: int) -> Update:
    """A restored run's revision back to what it was archived with (inserting its
    attempts, usage, context and artifacts bumped it)."""
    return (update(runs).where(runs.c.id == run_id, runs.c.revision != revision)
            .values(revision=revision))


def leases_table() -> Any:
    """The leases table, for the backend's insert-unless-present."""
    return leases
