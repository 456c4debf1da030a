"""The webhook side of the store: subscriptions, the outbox of deliveries (filled by a
trigger on run status changes, migration 0013), claims and attempt outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import StoreCore
from .rows import DeliveryAttemptRow, DeliveryRow, DueDelivery, WebhookRow
from .statements import webhooks as webhooks_sql


def _webhook_row(row: Any) -> WebhookRow:
    return WebhookRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])


def _delivery_row(row: Any) -> DeliveryRow:
    return DeliveryRow(*row[:len(DeliveryRow.__slots__)])


class StoreWebhooks(StoreCore):
    """Webhook subscriptions and deliveries; a part of ``SqlStore``."""

    # -- subscriptions -----------------------------------------------------------------
    def insert_webhook(self, row: WebhookRow) -> None:
        with self._write() as conn:
            conn.execute(webhooks_sql.insert_webhook(row))

    def list_webhooks(self, owner: str | None) -> list[WebhookRow]:
        with self._read() as conn:
            return [_webhook_row(r) for r in conn.execute(webhooks_sql.list_webhooks(owner))]

    def get_webhook(self, webhook_id: str, owner: str | None) -> WebhookRow | None:
        with self._read() as conn:
            found = conn.execute(webhooks_sql.webhook(webhook_id, owner)).first()
        return None if found is None else _webhook_row(found)

    def set_webhook_enabled(self, webhook_id: str, owner: str | None,
                            enabled: bool) -> bool:
        """False when no such subscription is visible."""
        with self._write() as conn:
            return bool(conn.execute(
                webhooks_sql.set_enabled(webhook_id, owner, enabled)).rowcount)

    def delete_webhook(self, webhook_id: str, owner: str | None) -> bool:
        """Delete a subscription with its deliveries; False when none is visible."""
        with self._write() as conn:
            if conn.execute(webhooks_sql.webhook(webhook_id, owner)).first() is None:
                return False
            conn.execute(webhooks_sql.delete_attempts_of(webhook_id))
            conn.execute(webhooks_sql.delete_deliveries_of(webhook_id))
            return bool(conn.execute(webhooks_sql.delete_webhook(webhook_id, owner)).rowcount)

    # -- deliveries --------------------------------------------------------------------
    def list_deliveries(self, owner: str | None, webhook_id: str | None,
                        status: str | None, limit: int) -> list[DeliveryRow]:
        query = webhooks_sql.deliveries(owner, webhook_id, status, limit)
        with self._read() as conn:
            return [self.sealing.delivery_row(_delivery_row(r)) for r in conn.execute(query)]

    def get_delivery(self, delivery_id: str, owner: str | None) -> DeliveryRow | None:
        with self._read() as conn:
            found = conn.execute(webhooks_sql.delivery(delivery_id, owner)).first()
        return None if found is None else self.sealing.delivery_row(_delivery_row(found))

    def delivery_attempts(self, delivery_id: str) -> list[DeliveryAttemptRow]:
        with self._read() as conn:
            return [DeliveryAttemptRow(*r)
                    for r in conn.execute(webhooks_sql.attempts_of(delivery_id))]

    def redeliver(self, delivery_id: str, owner: str | None, now: int) -> bool:
        """A failed or delivered delivery due again now; False when it is not finished."""
        with self._write() as conn:
            return bool(conn.execute(webhooks_sql.redeliver(delivery_id, owner, now)).rowcount)

    # -- dispatching -------------------------------------------------------------------
    def claim_deliveries(self, dispatcher: str, limit: int, now: int, expires_at: int,
                         tokens: Sequence[str]) -> list[DueDelivery]:
        """Claim up to ``limit`` due deliveries for ``dispatcher`` until ``expires_at``
        (one token of ``tokens`` each). A delivery whose previous claim expired gets that
        attempt recorded as lost with its dispatcher."""
        # A plain read first: idle dispatchers poll, and a claim is a write transaction
        # (on SQLite it takes the database's write lock).
        with self._read() as conn:
            if conn.execute(webhooks_sql.any_due(now)).first() is None:
                return []
        with self._write() as conn:
            found = conn.execute(webhooks_sql.due(now, min(limit, len(tokens)))).all()
            if not found:
                return []
            given: dict[str, str] = {}
            for (delivery_id, status), token in zip(found, tokens, strict=False):
                if status == "delivering":
                    self._record_lost_attempt(conn, delivery_id, now)
                given[delivery_id] = token
            conn.execute(webhooks_sql.CLAIM, [
                {"did": did, "by": dispatcher, "tok": tok, "expires": expires_at}
                for did, tok in given.items()])
            rows = conn.execute(webhooks_sql.claimed(list(given))).all()
        width = len(DeliveryRow.__slots__)
        opened = self.sealing.delivery_row
        return [DueDelivery(opened(_delivery_row(row)), row[width], row[width + 1],
                            given[row[0]]) for row in rows]

    def _record_lost_attempt(self, conn: Any, delivery_id: str, now: int) -> None:
        row = conn.execute(webhooks_sql.delivery(delivery_id, None)).first()
        if row is None or row.attempts < 1:
            return
        recorded = {a.attempt for a in conn.execute(webhooks_sql.attempts_of(delivery_id))}
        if row.attempts not in recorded:
            conn.execute(webhooks_sql.insert_attempt(DeliveryAttemptRow(
                delivery_id, row.attempts, now, None, None,
                "the dispatcher stopped during this attempt (its claim expired)", None)))

    def record_delivery_attempt(self, due: DueDelivery, attempt: DeliveryAttemptRow,
                                status: str, next_attempt_at: int | None,
                                delivered_at: int | None) -> bool:
        """An attempt and the delivery's new state, in one transaction; False (nothing
        written) when the claim expired and another dispatcher took the delivery."""
        with self._write() as conn:
            updated = conn.execute(webhooks_sql.record_outcome(
                due.delivery.id, due.token, status, next_attempt_at, delivered_at,
                attempt.status_code, attempt.error)).rowcount
            if not updated:
                return False
            conn.execute(webhooks_sql.insert_attempt(attempt))
            return True


__all__ = ["StoreWebhooks"]
