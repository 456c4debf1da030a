"""Shared rate limits in the store: named limits and their reservations, and the claim
rates of queues and of their concurrency keys (``QueueRates``, used by claims).

Every bucket is measured in the database's clock (PostgreSQL's ``clock_timestamp()``;
SQLite's database is on this machine, so its clock is this process's): hosts whose
clocks disagree still share one timeline, and a waiter sleeps a *duration* computed in
that timeline, which no host's clock offset changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from .. import gcra
from .core import StoreCore
from .rows import RateLimitRow
from .statements import ratelimits as rl_sql
from .translate import store_error


def database_now(conn: Connection) -> int:
    """The database's clock, in microseconds."""
    if conn.dialect.name == "sqlite":
        return time.time_ns() // 1000
    return int(conn.execute(rl_sql.PG_NOW).scalar_one())


class StoreRateLimits(StoreCore):
    """Named rate limits and their reservations; a part of ``SqlStore``."""

    _reserve_sql: str | None = None  # compiled for the backend's driver on first use

    def save_rate_limit(self, name: str, units: int, period_us: int, burst: int,
                        now: int) -> None:
        """Create or change a named limit; a change keeps its bucket's state."""
        with self._write() as conn:
            if conn.execute(rl_sql.lock_bucket(rl_sql.LIMIT, name)).first() is None:
                conn.execute(rl_sql.insert_bucket(rl_sql.LIMIT, name, "", units, period_us,
                                                  burst, 0, now))
            else:
                conn.execute(rl_sql.update_limit(name, units, period_us, burst, now))

    def delete_rate_limit(self, name: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(rl_sql.delete_limit(name)).rowcount)

    def rate_limit_rows(self) -> list[RateLimitRow]:
        with self._read() as conn:
            return [RateLimitRow(*row) for row in conn.execute(rl_sql.LIST_LIMITS)]

    def reserve_rate(self, name: str, units: float) -> tuple[int, int] | None:
        """Reserve ``units`` of the named limit: (when the caller may start, in this
        process's clock (µs since the epoch); how long that is after the reservation,
        µs), or None when there is no such limit.

        One ``UPDATE … RETURNING`` with a marker's fast commit (no fsync, no WAL flush
        wait: a reservation lost in a crash only holds the limit stricter for an
        instant); the row is locked for that statement alone. The caller waits after
        it, with no transaction open; an absolute start keeps the statement's own
        latency out of the spacing."""
        if self._reserve_sql is None:
            self._reserve_sql = self._compile_text(rl_sql.reserve_sql(self.backend.name))
        params = {"name": name, "units": float(units), "now": time.time_ns() // 1000}
        try:
            row = self.backend.marker_row(self._reserve_sql, params)
        except Exception as exc:
            raise store_error(self._where, exc) from exc
        local = time.time_ns() // 1000
        if row is None:
            return None
        tat, now, rate, period_us, burst = (int(value) for value in row)
        start = gcra.start_from(tat, now, units, period_us, rate, burst)
        return start - now + local, start - now


class QueueRates:
    """The claim rates of the queues one claim serves: which candidates conform now.

    Built inside the claim's transaction, after the queues' limit rows are locked (so no
    other claim on these queues runs until it commits); ``save`` writes the buckets
    back. Claims check and never wait: a run refused now stays pending, and ``due``
    says when the first refused one would conform.
    """

    def __init__(self, conn: Connection, limit_rows: Iterable[Any], local_now: int) -> None:
        self.conn = conn
        self.queue: dict[str, tuple[int, int]] = {}
        self.per_key: dict[str, tuple[int, int]] = {}
        for row in limit_rows:
            if row.rate_units is not None:
                self.queue[row.name] = (row.rate_units, row.rate_period_us)
            if row.key_rate_units is not None:
                self.per_key[row.name] = (row.key_rate_units, row.key_rate_period_us)
        self.active = bool(self.queue or self.per_key)
        self.now = database_now(conn) if self.active else 0
        self.offset = local_now - self.now  # database clock to this process's clock
        self.tats: dict[tuple[str, str, str], int] = {}
        self.stored: set[tuple[str, str, str]] = set()
        self.changed: set[tuple[str, str, str]] = set()
        self.next_at: int | None = None

    def load(self, candidates: Sequence[Any]) -> None:
        """Read (and lock) the buckets these candidates need."""
        if not self.active:
            return
        if self.queue:
            for name, key, tat in self.conn.execute(rl_sql.lock_buckets(rl_sql.QUEUE,
                                                                       list(self.queue))):
                self._stored((rl_sql.QUEUE, name, key), tat)
        keys = list({c.concurrency_key for c in candidates
                     if c.queue in self.per_key and c.concurrency_key is not None})
        if keys:
            for name, key, tat in self.conn.execute(rl_sql.lock_buckets(
                    rl_sql.KEY, list(self.per_key), keys)):
                self._stored((rl_sql.KEY, name, key), tat)

    def _stored(self, bucket: tuple[str, str, str], tat: int) -> None:
        self.tats[bucket] = tat
        self.stored.add(bucket)

    def _conforms(self, bucket: tuple[str, str, str], rate: tuple[int, int]) -> bool:
        units, period_us = rate
        tat = self.tats.get(bucket, 0)
        if gcra.admits(tat, self.now, period_us, units, 1):
            return True
        at = gcra.start_at(tat, self.now, period_us, units, 1)
        self.next_at = at if self.next_at is None else min(self.next_at, at)
        return False

    def admit(self, queue: str, key: str | None) -> bool:
        """Whether a run of ``queue`` (with ``key``) may be claimed now; if so its
        buckets are charged."""
        if not self.active:
            return True
        charges: list[tuple[tuple[str, str, str], tuple[int, int]]] = []
        if queue in self.queue:
            charges.append(((rl_sql.QUEUE, queue, ""), self.queue[queue]))
        if key is not None and queue in self.per_key:
            charges.append(((rl_sql.KEY, queue, key), self.per_key[queue]))
        if not all(self._conforms(bucket, rate) for bucket, rate in charges):
            return False
        for bucket, (units, period_us) in charges:
            _, self.tats[bucket] = gcra.reserve(self.tats.get(bucket, 0), self.now, 1,
                                                period_us, units, 1)
            self.changed.add(bucket)
        return True

    def save(self) -> None:
        for bucket in self.changed:
            scope, name, key = bucket
            if bucket in self.stored:
                self.conn.execute(rl_sql.set_tat(scope, name, key, self.tats[bucket],
                                                 self.now))
            else:
                units, period_us = (self.queue if scope == rl_sql.QUEUE
                                    else self.per_key)[name]
                self.conn.execute(rl_sql.insert_bucket(scope, name, key, units, period_us, 1,
                                                       self.tats[bucket], self.now))

    def due(self) -> int | None:
        """When (this process's clock) the first refused run would conform."""
        return None if self.next_at is None else self.next_at + self.offset


__all__ = ["QueueRates", "StoreRateLimits", "database_now"]
