"""Sending webhook deliveries from the outbox: claims, signatures, retries, attempts.

A dispatcher claims due deliveries in small batches (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so many dispatchers never send one delivery at the same time), each claim
expiring after ``claim_timeout``: a dispatcher killed mid-delivery leaves the delivery
to be claimed again, and sent with the same ``webhook-id`` (at least once). Every
attempt is recorded with its status code, latency, error and the start of the answer.
A failed attempt is retried with exponential backoff and jitter (or when the answer's
``Retry-After`` says), for ``retry_for`` (24 hours) from the event, then the delivery
is marked ``failed``; ``Ledger.redeliver`` sends it again by hand.

Targets are resolved at each attempt and the request goes to the address checked:
loopback, private, link-local, reserved, multicast and metadata addresses are refused
(the refusal is the attempt's error) unless allowed. Secrets are never logged.

Example::

    dispatcher = WebhookDispatcher(ledger)
    dispatcher.start()      # a background thread
    ...
    dispatcher.stop()
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from . import __version__, ids
from .errors import ConfigurationError, FlowledgerError
from .store import DeliveryAttemptRow, DueDelivery
from .webhooks import (
    ALLOW_PRIVATE_VARIABLE,
    SECRET_PREFIX,
    body_of,
    private_allowed,
    refused_address,
)

if TYPE_CHECKING:
    import httpx

    from .ledger import Ledger

log = logging.getLogger("flowledger.webhooks")
RESPONSE_PREFIX = 256
# What an answer's body is read up to (the record keeps RESPONSE_PREFIX characters).
_READ_AT_MOST = 4096


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` keyed by the secret's bytes (Standard Webhooks).

    Example: ``sign(hook.secret, "msg_…", int(time.time()), body)``
    """
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise ConfigurationError(f"{name} must be positive, not {value!r}")
    return seconds


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response: str | None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds an answer's ``Retry-After`` asks to wait (a number or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


class WebhookDispatcher:
    """Sends the outbox's due deliveries, ``concurrency`` at a time, until stopped.

    ``timeout`` bounds each request (10 s); a failed attempt is retried after
    ``backoff`` seconds doubling at each retry up to ``max_backoff`` (with jitter), or
    after the answer's ``Retry-After``, until ``retry_for`` after the event (24 h) or
    ``max_attempts``; then the delivery is ``failed``. A claim lasts ``claim_timeout``:
    past it, a delivery whose dispatcher stopped is sent again. ``allow_private``
    (default: ``FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE=1``) allows non-public targets.
    Workers and ``flowledger serve`` run one; run your own with ``start()``.

    Example::

        dispatcher = fl.WebhookDispatcher(ledger, backoff=1)
        dispatcher.start()
        ...
        dispatcher.stop()
    """

    def __init__(self, ledger: Ledger, *, concurrency: int = 4,
                 poll_interval: float | timedelta = 1.0, timeout: float | timedelta = 10.0,
                 backoff: float | timedelta = 5.0, max_backoff: float | timedelta = 3600.0,
                 retry_for: float | timedelta = timedelta(hours=24),
                 max_attempts: int | None = None, claim_timeout: float | timedelta | None = None,
                 allow_private: bool | None = None) -> None:
        if not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
            raise ConfigurationError("concurrency must be between 1 and 64")
        if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
            raise ConfigurationError("max_attempts must be a positive integer")
        self.ledger = ledger
        self.store = ledger.store
        self.concurrency = concurrency
        self.poll_s = _seconds(poll_interval, "poll_interval")
        self.timeout_s = _seconds(timeout, "timeout")
        self.backoff_s = _seconds(backoff, "backoff")
        self.max_backoff_s = _seconds(max_backoff, "max_backoff")
        self.retry_for_us = int(_seconds(retry_for, "retry_for") * 1_000_000)
        self.max_attempts = max_attempts
        self.claim_us = int((_seconds(claim_timeout, "claim_timeout") if claim_timeout
                             else self.timeout_s + 50) * 1_000_000)
        self.allow_private = private_allowed(allow_private)
        self.id = f"{ledger.identity}:webhooks"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- running ---------------------------------------------------------------------
    def start(self) -> WebhookDispatcher:
        """Dispatch on a background thread (a daemon) until ``stop()``."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name="flowledger-webhooks",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop dispatching: attempts in flight finish (within the request timeout)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout if timeout is not None else self.timeout_s + 5)

    def run(self) -> None:
        """Dispatch in this thread until ``stop()``."""
        try:
            while not self._stopping.is_set():
                try:
                    sent = self.run_once()
                except FlowledgerError as exc:
                    log.warning("webhook dispatcher: %s; retrying in %.1fs", exc, self.poll_s)
                    sent = 0
                if not sent:
                    self._stopping.wait(self.poll_s)
        finally:
            self.close()

    def close(self) -> None:
        """Release the HTTP client and threads (``run`` does it when it stops)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def run_once(self) -> int:
        """Claim the due deliveries (up to ``concurrency``), send them and record the
        attempts; returns how many were attempted."""
        now = ids.now_us()
        claimed = self.store.claim_deliveries(
            self.id, self.concurrency, now, now + self.claim_us,
            [ids.new_token() for _ in range(self.concurrency)])
        if not claimed:
            return 0
        if len(claimed) == 1:
            self._deliver(claimed[0])
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency,
                                                thread_name_prefix="flowledger-webhook")
            list(self._pool.map(self._deliver, claimed))
        return len(claimed)

    # -- one attempt -------------------------------------------------------------------
    def _deliver(self, due: DueDelivery) -> None:
        delivery = due.delivery
        try:
            outcome = self._send(due)
        except Exception as exc:  # a bug must not stop the dispatcher: record it
            log.exception("webhook delivery %s: unexpected error", delivery.id)
            outcome = _Outcome(None, None, f"{type(exc).__name__}: {exc}"[:500], None)
        now = ids.now_us()
        attempt = DeliveryAttemptRow(delivery.id, delivery.attempts, now, outcome.status_code,
                                     outcome.latency_ms, outcome.error, outcome.response)
        status, next_at, delivered_at = self._next_state(due, outcome, now)
        host = urlsplit(due.url).hostname
        if not self.store.record_delivery_attempt(due, attempt, status, next_at,
                                                  delivered_at):
            log.info("webhook delivery %s: its claim expired during attempt %d (another "
                     "dispatcher has it)", delivery.id, delivery.attempts)
        elif status == "delivered":
            log.info("webhook delivery %s (%s) to %s: delivered (attempt %d)", delivery.id,
                     delivery.event, host, delivery.attempts)
        else:
            log.warning("webhook delivery %s (%s) to %s: attempt %d failed: %s; %s",
                        delivery.id, delivery.event, host, delivery.attempts,
                        outcome.error or f"HTTP {outcome.status_code}",
                        "giving up" if status == "failed" else "will retry")

    def _next_state(self, due: DueDelivery, outcome: _Outcome,
                    now: int) -> tuple[str, int | None, int | None]:
        if outcome.delivered:
            return "delivered", None, now
        delivery = due.delivery
        if self.max_attempts is not None and delivery.attempts >= self.max_attempts:
            return "failed", None, None
        if outcome.retry_after is not None:
            delay = min(outcome.retry_after, self.retry_for_us / 1_000_000)
        else:
            ceiling = min(self.backoff_s * 2 ** (delivery.attempts - 1), self.max_backoff_s)
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        next_at = now + int(delay * 1_000_000)
        window_start = delivery.redelivered_at or delivery.created_at
        if next_at > window_start + self.retry_for_us:
            return "failed", None, None
        return "pending", next_at, None

    def _send(self, due: DueDelivery) -> _Outcome:
        delivery = due.delivery
        target, error = self._pinned(due.url)
        if target is None:
            return _Outcome(None, None, error, None)
        url, headers, extensions = target
        body = body_of(delivery)
        timestamp = int(time.time())
        headers.update({
            "content-type": "application/json",
            "user-agent": f"flowledger/{__version__}",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(due.secret, delivery.id, timestamp, body),
        })
        import httpx  # noqa: PLC0415 (start-up time: only dispatching needs it)

        started = time.monotonic()
        try:
            with self._http().stream("POST", url, content=body, headers=headers,
                                     extensions=extensions) as response:
                read = b""
                for chunk in response.iter_bytes():
                    read += chunk
                    # The status is known: a slow body must not hold the claim.
                    if (len(read) >= _READ_AT_MOST
                            or time.monotonic() - started > self.timeout_s):
                        break
                latency = int((time.monotonic() - started) * 1000)
                text = read.decode("utf-8", errors="replace")[:RESPONSE_PREFIX] or None
                code = response.status_code
                wait = retry_after(response.headers.get("retry-after"), time.time())
                error = None if 200 <= code < 300 else f"HTTP {code}"
                return _Outcome(code, latency, error, text, wait)
        except httpx.TimeoutException:
            return _Outcome(None, int((time.monotonic() - started) * 1000),
                            f"no answer within {self.timeout_s:g}s", None)
        except httpx.HTTPError as exc:
            return _Outcome(None, int((time.monotonic() - started) * 1000),
                            f"{type(exc).__name__}: {exc}"[:500], None)

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx  # noqa: PLC0415 (start-up time: only dispatching needs it)

            # No redirects (a redirect could lead to an address never checked), no proxy
            # from the environment (the connection goes to the address checked).
            self._client = httpx.Client(timeout=self.timeout_s, follow_redirects=False,
                                        trust_env=False)
        return self._client

    def _pinned(self, url: str) -> tuple[tuple[str, dict[str, str], dict[str, Any]] | None,
                                         str | None]:
        """The request to send: the URL with its host replaced by an address it resolves
        to, checked (so a name cannot resolve to another address between the check and
        the connection), the Host header and the TLS server name. Or why not."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            return None, f"cannot resolve {host}: {exc}"[:500]
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        if not addresses:
            return None, f"cannot resolve {host}"
        if not self.allow_private:
            for address in addresses:
                why = refused_address(address)
                if why is not None:
                    return None, (f"refused: {host} resolves to {address}, {why} (set "
                                  f"{ALLOW_PRIVATE_VARIABLE}=1 to allow it)")
        chosen = addresses[0]
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        headers = {"host": parts.netloc.rsplit("@", 1)[-1]}
        extensions: dict[str, Any] = {}
        if parts.scheme == "https":
            extensions["sni_hostname"] = host
        return (urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
                headers, extensions), None


__all__ = ["WebhookDispatcher", "retry_after", "sign"]
