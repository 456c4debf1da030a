"""Webhook subscriptions, their outbox of deliveries, and delivery attempts.

The outbox rows themselves are inserted by a trigger on the runs table (migration 0013),
in the transaction that changes a run's status. Dispatchers claim due deliveries of
enabled subscriptions (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the claim's
``BEGIN IMMEDIATE`` serialises claims), and write each attempt's outcome fenced by the
claim's token.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Delete, Insert, Select, Update, bindparam, delete, insert, select, update

from ..rows import DeliveryAttemptRow, DeliveryRow, WebhookRow
from ..schema import webhook_attempts, webhook_deliveries, webhooks

WEBHOOK_COLUMNS = [webhooks.c[name] for name in WebhookRow.__slots__]
DELIVERY_COLUMNS = [webhook_deliveries.c[name] for name in DeliveryRow.__slots__]
ATTEMPT_COLUMNS = [webhook_attempts.c[name] for name in DeliveryAttemptRow.__slots__]
UNFINISHED = ("pending", "delivering")


# -- subscriptions -------------------------------------------------------------------
def insert_webhook(row: WebhookRow) -> Insert:
    return insert(webhooks).values(id=row.id, owner=row.owner, url=row.url,
                                   events=row.events, secret=row.secret,
                                   enabled=int(row.enabled), created_at=row.created_at)


def list_webhooks(owner: str | None) -> Select[Any]:
    """Subscriptions (the owner's; None: everyone's), oldest first."""
    query = select(*WEBHOOK_COLUMNS).order_by(webhooks.c.created_at, webhooks.c.id)
    if owner is not None:
        query = query.where(webhooks.c.owner == owner)
    return query


def _owned(webhook_id: str, owner: str | None) -> list[Any]:
    condition = [webhooks.c.id == webhook_id]
    if owner is not None:
        condition.append(webhooks.c.owner == owner)
    return condition


def webhook(webhook_id: str, owner: str | None) -> Select[Any]:
    return select(*WEBHOOK_COLUMNS).where(*_owned(webhook_id, owner))


def set_enabled(webhook_id: str, owner: str | None, enabled: bool) -> Update:
    return update(webhooks).where(*_owned(webhook_id, owner)).values(enabled=int(enabled))


def delete_webhook(webhook_id: str, owner: str | None) -> Delete:
    """Its deliveries and their attempts go with it (foreign keys cascade)."""
    return delete(webhooks).where(*_owned(webhook_id, owner))


def delete_deliveries_of(webhook_id: str) -> Delete:
    """A subscription's deliveries, deleted before it (SQLite cascades only with its
    foreign keys on; this does not rely on it)."""
    return delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)


def delete_attempts_of(webhook_id: str) -> Delete:
    return delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(
        select(webhook_deliveries.c.id).where(webhook_deliveries.c.webhook_id == webhook_id)))


# -- reading deliveries ----------------------------------------------------------------
def deliveries(owner: str | None, webhook_id: str | None, status: str | None,
               limit: int) -> Select[Any]:
    """Deliveries, newest first, with these filters."""
    table = webhook_deliveries.c
    query = select(*DELIVERY_COLUMNS).order_by(table.created_at.desc(), table.id.desc())
    if owner is not None:
        query = query.where(table.owner == owner)
    if webhook_id is not None:
        query = query.where(table.webhook_id == webhook_id)
    if status is not None:
        query = query.where(table.status == status)
    return query.limit(limit)


def delivery(delivery_id: str, owner: str | None) -> Select[Any]:
    query = select(*DELIVERY_COLUMNS).where(webhook_deliveries.c.id == delivery_id)
    if owner is not None:
        query = query.where(webhook_deliveries.c.owner == owner)
    return query


def attempts_of(delivery_id: str) -> Select[Any]:
    return (select(*ATTEMPT_COLUMNS).where(webhook_attempts.c.delivery_id == delivery_id)
            .order_by(webhook_attempts.c.attempt))


def redeliver(delivery_id: str, owner: str | None, now: int) -> Update:
    """A finished delivery (failed or delivered) due again now, with a new retry window."""
    table = webhook_deliveries.c
    condition = [table.id == delivery_id, table.status.in_(("failed", "delivered"))]
    if owner is not None:
        condition.append(table.owner == owner)
    return update(webhook_deliveries).where(*condition).values(
        status="pending", next_attempt_at=now, redelivered_at=now, claimed_by=None,
        claim_token=None)


# -- dispatching -----------------------------------------------------------------------
def due(now: int, limit: int) -> Select[Any]:
    """(id, status) of up to ``limit`` deliveries of enabled subscriptions that are due:
    pending ones whose time came, and claimed ones whose claim expired (their dispatcher
    stopped mid-attempt), oldest first; locked, skipping those another claim holds."""
    table = webhook_deliveries.c
    return (select(table.id, table.status)
            .join(webhooks, webhooks.c.id == table.webhook_id)
            .where(table.status.in_(UNFINISHED), table.next_attempt_at <= now,
                   webhooks.c.enabled == 1)
            .order_by(table.next_attempt_at).limit(limit)
            .with_for_update(skip_locked=True, of=webhook_deliveries))


def any_due(now: int) -> Select[Any]:
    """One due delivery, if any (an unlocked read: whether to claim at all)."""
    table = webhook_deliveries.c
    return (select(table.id).join(webhooks, webhooks.c.id == table.webhook_id)
            .where(table.status.in_(UNFINISHED), table.next_attempt_at <= now,
                   webhooks.c.enabled == 1).limit(1))


# Claim one due delivery (``did``): its attempt is counted now, durably.
CLAIM = (update(webhook_deliveries).where(webhook_deliveries.c.id == bindparam("did"))
         .values(status="delivering", claimed_by=bindparam("by"),
                 claim_token=bindparam("tok"), next_attempt_at=bindparam("expires"),
                 attempts=webhook_deliveries.c.attempts + 1))


def claimed(ids: list[str]) -> Select[Any]:
    """The claimed deliveries with their subscription's URL and secret."""
    return (select(*DELIVERY_COLUMNS, webhooks.c.url, webhooks.c.secret)
            .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
            .where(webhook_deliveries.c.id.in_(ids)))


def insert_attempt(row: DeliveryAttemptRow) -> Insert:
    return insert(webhook_attempts).values(
        delivery_id=row.delivery_id, attempt=row.attempt, at=row.at,
        status_code=row.status_code, latency_ms=row.latency_ms, error=row.error,
        response=row.response)


def record_outcome(delivery_id: str, token: str, status: str, next_attempt_at: int | None,
                   delivered_at: int | None, status_code: int | None,
                   error: str | None) -> Update:
    """An attempt's outcome, written only while the claim is still this dispatcher's."""
    table = webhook_deliveries.c
    return (update(webhook_deliveries)
            .where(table.id == delivery_id, table.claim_token == token,
                   table.status == "delivering")
            .values(status=status, next_attempt_at=next_attempt_at,
                    delivered_at=delivered_at, last_status_code=status_code,
                    last_error=error, claimed_by=None, claim_token=None))
