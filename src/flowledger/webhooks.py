"""Webhooks: per-owner subscriptions to run events, delivered from a durable outbox and
signed per the Standard Webhooks specification.

A subscription names a URL and the events it wants (``EVENTS``). When a run's status
changes to one of them, the store writes one delivery per matching enabled subscription
in the same transaction (a trigger, migration 0013), so a process that dies right
after a run ends still delivers. Dispatchers (``webhook_dispatch.py``, run by workers
and ``flowledger serve``) send them, retry them, and record every attempt.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from . import ids
from .encryption import error_data
from .errors import ConfigurationError, WebhookNotFound
from .ledgerbase import LedgerBase
from .models import from_micros
from .store import DeliveryAttemptRow, DeliveryRow, WebhookRow

#: The events a subscription can name: a run's status changed to completed, failed,
#: cancelled or paused.
EVENTS = ("run.completed", "run.failed", "run.cancelled", "run.paused")
DEFAULT_EVENTS = ("run.completed", "run.failed")
DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")
SECRET_PREFIX = "whsec_"
#: Set to 1 to allow webhook targets on loopback, private, link-local and other
#: non-public addresses (refused by default: a token holder could reach internal
#: services through the dispatcher).
ALLOW_PRIVATE_VARIABLE = "FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE"
# Cloud metadata services; link-local or private already, named for the error message.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"),
                                ipaddress.ip_address("fd00:ec2::254")})


def private_allowed(allow_private: bool | None = None) -> bool:
    """``allow_private`` if given, else whether ``FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE=1``."""
    if allow_private is not None:
        return allow_private
    return os.environ.get(ALLOW_PRIVATE_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not be sent to this address by default (None: it is public)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, flag in (("a loopback", address.is_loopback),
                       ("a link-local", address.is_link_local),
                       ("a multicast", address.is_multicast),
                       ("an unspecified", address.is_unspecified),
                       ("a reserved", address.is_reserved),
                       ("a private", address.is_private),
                       ("a non-public", not address.is_global)):  # e.g. shared 100.64/10
        if flag:
            return f"{kind} address"
    return None


def check_url(url: str, allow_private: bool | None = None) -> str:
    """A webhook target URL, checked: http or https, a host, no credentials, and not a
    literal non-public address (unless allowed). Names resolve when a delivery is sent,
    and the addresses they resolve to are checked then."""
    text = url.strip() if isinstance(url, str) else ""
    if not text or len(text) > 2000:
        raise ConfigurationError("a webhook URL has 1 to 2000 characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"invalid webhook URL {text[:200]!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(f"a webhook URL must start with http:// or https://, not "
                                 f"{text[:200]!r}")
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"the webhook URL {text[:200]!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("a webhook URL may not hold credentials (user:password@): "
                                 "deliveries are signed instead")
    if port == 0:
        raise ConfigurationError("a webhook URL's port must be between 1 and 65535")
    if not private_allowed(allow_private):
        why = None
        if host == "localhost" or host.endswith(".localhost"):
            why = "a loopback address"
        else:
            # A name is checked when it is resolved, at each delivery.
            with contextlib.suppress(ValueError):
                why = refused_address(ipaddress.ip_address(host))
        if why is not None:
            raise ConfigurationError(
                f"the webhook URL's host {host} is {why}; webhooks are sent to public "
                f"addresses only unless {ALLOW_PRIVATE_VARIABLE}=1 (or allow_private=True)")
    return text


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    """Event names, checked against ``EVENTS``; at least one, in ``EVENTS`` order."""
    if isinstance(events, str):
        events = [events]
    chosen = set()
    for event in events:
        if event not in EVENTS:
            raise ConfigurationError(f"unknown webhook event {str(event)[:100]!r}; the "
                                     f"events are {', '.join(EVENTS)}")
        chosen.add(event)
    if not chosen:
        raise ConfigurationError(f"a webhook needs at least one event ({', '.join(EVENTS)})")
    return tuple(event for event in EVENTS if event in chosen)


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _iso(micros: Any) -> str | None:
    moment = from_micros(micros) if isinstance(micros, int) else None
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _run_id(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def payload_of(row: DeliveryRow) -> dict[str, Any]:
    """What a delivery sends: ``{"type", "timestamp", "data"}`` (Standard Webhooks), the
    data being the run as it was when the event happened."""
    snapshot = json.loads(row.payload)
    error = None
    if snapshot.get("error"):
        try:
            recorded = error_data(snapshot["error"])
            error = {"type": str(recorded.get("type", "")),
                     "message": str(recorded.get("message", ""))}
        except (ValueError, AttributeError):
            error = {"type": "", "message": str(snapshot["error"])}
    data = {"run_id": _run_id(row.run_id), "workflow": snapshot.get("workflow"),
            "version": snapshot.get("version"), "status": snapshot.get("status"),
            "owner": row.owner, "queue": snapshot.get("queue"),
            "parent_id": _run_id(snapshot.get("parent_id")),
            "created_at": _iso(snapshot.get("created_at")),
            "started_at": _iso(snapshot.get("started_at")),
            "completed_at": _iso(snapshot.get("completed_at")),
            "paused_at": _iso(snapshot.get("paused_at")),
            "pause_reason": snapshot.get("pause_reason"), "error": error}
    return {"type": row.event, "timestamp": _iso(row.created_at), "data": data}


def body_of(row: DeliveryRow) -> bytes:
    """The exact bytes a delivery sends (the same at every attempt)."""
    return json.dumps(payload_of(row), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Webhook:
    """A subscription: where to send which events. ``secret`` (``whsec_…``, the Standard
    Webhooks signing secret) is given once, by ``add_webhook``; listings leave it None.

    Example::

        hook = ledger.add_webhook("https://example.com/hooks/flowledger")
        print(hook.id, hook.secret)  # keep the secret: receivers verify signatures with it
    """

    id: str
    owner: str
    url: str
    events: tuple[str, ...]
    enabled: bool
    created_at: datetime
    secret: str | None = None

    @classmethod
    def from_row(cls, row: WebhookRow, *, secret: bool = False) -> Webhook:
        created = from_micros(row.created_at)
        assert created is not None
        return cls(row.id, row.owner, row.url, tuple(json.loads(row.events)), row.enabled,
                   created, row.secret if secret else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the secret only when this record holds it."""
        found = asdict(self)
        found["events"] = list(self.events)
        found["created_at"] = self.created_at.isoformat()
        if self.secret is None:
            del found["secret"]
        return found


@dataclass(frozen=True)
class WebhookAttempt:
    """One attempt of a delivery: when, the answer's status code (None: no answer), the
    latency, the error, and the start of the answer's body (at most 256 characters)."""

    number: int
    at: datetime
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response: str | None

    @classmethod
    def from_row(cls, row: DeliveryAttemptRow) -> WebhookAttempt:
        at = from_micros(row.at)
        assert at is not None
        return cls(row.attempt, at, row.status_code, row.latency_ms, row.error, row.response)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one subscription: ``id`` is its ``webhook-id`` header (the same at
    every attempt, for receivers to deduplicate); ``status`` is pending, delivering,
    delivered or failed (after its last retry); ``payload`` is what it sends.

    Example: ``[d.id for d in ledger.webhook_deliveries(status="failed")]``
    """

    id: str
    webhook_id: str
    owner: str
    event: str
    run_id: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]

    @classmethod
    def from_row(cls, row: DeliveryRow) -> WebhookDelivery:
        created = from_micros(row.created_at)
        assert created is not None
        due = row.next_attempt_at if row.status == "pending" else None
        return cls(row.id, row.webhook_id, row.owner, row.event, str(row.run_id), row.status,
                   row.attempts, created, from_micros(due), from_micros(row.delivered_at),
                   row.last_status_code, row.last_error, payload_of(row))

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        for name in ("created_at", "next_attempt_at", "delivered_at"):
            value = getattr(self, name)
            found[name] = None if value is None else value.isoformat()
        return found


class LedgerWebhooks(LedgerBase):
    """Webhook subscriptions and their deliveries, a part of ``Ledger``. A Ledger opened
    with ``owner=`` sees only that owner's; another owner's ids are not found."""

    def add_webhook(self, url: str, events: Iterable[str] = DEFAULT_EVENTS, *,
                    owner: str | None = None, allow_private: bool | None = None) -> Webhook:
        """Subscribe ``url`` to run events (``EVENTS``) of ``owner``'s runs (default: this
        Ledger's owner). Its ``secret`` is shown this once. Targets on loopback, private,
        link-local or metadata addresses are refused unless ``allow_private`` (default:
        ``FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE=1``).

        Example::

            hook = ledger.add_webhook("https://example.com/hooks", events=["run.failed"])
            store_secret(hook.secret)
        """
        checked_url = check_url(url, allow_private)
        chosen = check_events(events)
        row = WebhookRow("wh_" + secrets.token_hex(8), self._owner_for(owner), checked_url,
                         json.dumps(list(chosen)), new_secret(), True, ids.now_us())
        self.store.insert_webhook(row)
        return Webhook.from_row(row, secret=True)

    def webhooks(self) -> list[Webhook]:
        """The subscriptions this Ledger sees, oldest first (no secrets).

        Example: ``[(w.id, w.url, w.enabled) for w in ledger.webhooks()]``
        """
        return [Webhook.from_row(row) for row in self.store.list_webhooks(self.owner)]

    def webhook(self, webhook_id: str) -> Webhook:
        """One subscription (no secret). Raises WebhookNotFound.

        Example: ``ledger.webhook("wh_3f2a…").events``
        """
        row = self.store.get_webhook(_key(webhook_id), self.owner)
        if row is None:
            raise WebhookNotFound(f"no webhook {str(webhook_id)[:100]!r}")
        return Webhook.from_row(row)

    def disable_webhook(self, webhook_id: str) -> Webhook:
        """Stop sending to a subscription; its deliveries wait (pending) until it is
        enabled again. Raises WebhookNotFound. Example: ``ledger.disable_webhook(hook.id)``
        """
        return self._set_enabled(webhook_id, False)

    def enable_webhook(self, webhook_id: str) -> Webhook:
        """Send to a disabled subscription again. Raises WebhookNotFound.
        Example: ``ledger.enable_webhook(hook.id)``"""
        return self._set_enabled(webhook_id, True)

    def _set_enabled(self, webhook_id: str, enabled: bool) -> Webhook:
        if not self.store.set_webhook_enabled(_key(webhook_id), self.owner, enabled):
            raise WebhookNotFound(f"no webhook {str(webhook_id)[:100]!r}")
        return self.webhook(webhook_id)

    def remove_webhook(self, webhook_id: str) -> None:
        """Delete a subscription with its deliveries (unsent ones are never sent).
        Raises WebhookNotFound. Example: ``ledger.remove_webhook(hook.id)``"""
        if not self.store.delete_webhook(_key(webhook_id), self.owner):
            raise WebhookNotFound(f"no webhook {str(webhook_id)[:100]!r}")

    def webhook_deliveries(self, webhook_id: str | None = None, *, status: str | None = None,
                           limit: int = 50) -> list[WebhookDelivery]:
        """Deliveries, newest first: of one subscription (else all this Ledger sees), with
        a ``status`` (pending, delivering, delivered, failed), at most ``limit``.

        Example: ``ledger.webhook_deliveries(hook.id, status="failed")``
        """
        if status is not None and status not in DELIVERY_STATUSES:
            raise ConfigurationError(f"unknown delivery status {status[:40]!r}; the "
                                     f"statuses are {', '.join(DELIVERY_STATUSES)}")
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ConfigurationError("limit must be between 1 and 1000")
        if webhook_id is not None:
            webhook_id = self.webhook(webhook_id).id
        return [WebhookDelivery.from_row(row) for row in
                self.store.list_deliveries(self.owner, webhook_id, status, limit)]

    def webhook_delivery(self, delivery_id: str) -> WebhookDelivery:
        """One delivery. Raises WebhookNotFound.
        Example: ``ledger.webhook_delivery("msg_…").status``"""
        row = self.store.get_delivery(_key(delivery_id), self.owner)
        if row is None:
            raise WebhookNotFound(f"no webhook delivery {str(delivery_id)[:100]!r}")
        return WebhookDelivery.from_row(row)

    def webhook_attempts(self, delivery_id: str) -> list[WebhookAttempt]:
        """Every attempt of a delivery, first first. Raises WebhookNotFound.

        Example: ``[(a.number, a.status_code, a.error) for a in ledger.webhook_attempts(d)]``
        """
        found = self.webhook_delivery(delivery_id)
        return [WebhookAttempt.from_row(row) for row in self.store.delivery_attempts(found.id)]

    def redeliver(self, delivery_id: str) -> WebhookDelivery:
        """Send a failed (or delivered) delivery again, now, with a new retry window and
        the same ``webhook-id``; one still pending is left as it is. Raises
        WebhookNotFound. Example: ``ledger.redeliver("msg_…")``"""
        found = self.webhook_delivery(delivery_id)
        self.store.redeliver(found.id, self.owner, ids.now_us())
        return self.webhook_delivery(found.id)


def _key(value: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > 40:
        raise WebhookNotFound(f"no webhook or delivery {str(value)[:100]!r}")
    return text


__all__ = ["DEFAULT_EVENTS", "EVENTS", "LedgerWebhooks", "Webhook", "WebhookAttempt",
           "WebhookDelivery", "body_of", "check_events", "check_url", "payload_of",
           "private_allowed", "refused_address"]
