"""Rate limits: named limits, the GCRA bucket rows of named limits, queue and key claim
rates, and the database's clock (which every bucket is measured in).

A reservation is one ``UPDATE … RETURNING`` (``reserve_sql``): it locks the row for that
statement, so concurrent reservations of one limit serialise on it and never both see
the same ``tat``. Claims read queue buckets ``FOR UPDATE`` inside the claim's write
transaction (SQLite: its ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Delete,
    Insert,
    Select,
    TextClause,
    Update,
    delete,
    insert,
    select,
    text,
    update,
)

from ..schema import queues, rate_limits

LIMIT, QUEUE, KEY = "limit", "queue", "key"  # the scopes of bucket rows

# The database's clock in microseconds (PostgreSQL: the time of the call, not of the
# transaction's start, which may be older than the lock wait).
PG_NOW: TextClause = text(
    "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)")

# One reservation of a named limit as one statement (the step hot path: one round trip,
# a marker's fast commit; the UPDATE locks the row for its own duration only). Returns
# the new ``tat`` and the clock it was computed with; the start is derived from them
# (``gcra.start_from``). ``{now}``: the database's clock (PostgreSQL) or ``:now``.
RESERVE = """
UPDATE flowledger_rate_limits
SET tat = {greatest}(tat, {now}) + {cost}, updated_at = {now}
WHERE scope = 'limit' AND name = :name AND key = ''
RETURNING tat, updated_at, units, period_us, burst
"""
PG_CLOCK = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
# The cost in microseconds, rounded up (as ``gcra.cost_us``).
PG_COST = "CAST(CEIL(CAST(:units AS DOUBLE PRECISION) * period_us / units) AS BIGINT)"
SQLITE_COST = ("(CAST(:units * period_us * 1.0 / units AS INTEGER)"
               " + (:units * period_us * 1.0 / units > CAST(:units * period_us * 1.0 / units"
               " AS INTEGER)))")


def reserve_sql(dialect: str) -> str:
    """``RESERVE`` for a dialect (text SQL with ``:name`` parameters)."""
    if dialect == "postgresql":
        return RESERVE.format(greatest="GREATEST", now=PG_CLOCK, cost=PG_COST)
    return RESERVE.format(greatest="MAX", now=":now", cost=SQLITE_COST)


LIST_LIMITS = (select(rate_limits.c.name, rate_limits.c.units, rate_limits.c.period_us,
                      rate_limits.c.burst, rate_limits.c.tat, rate_limits.c.updated_at)
               .where(rate_limits.c.scope == LIMIT).order_by(rate_limits.c.name))


def lock_bucket(scope: str, name: str, key: str = "") -> Select[Any]:
    """(units, period_us, burst, tat) of one bucket, its row locked."""
    return (select(rate_limits.c.units, rate_limits.c.period_us, rate_limits.c.burst,
                   rate_limits.c.tat)
            .where(rate_limits.c.scope == scope, rate_limits.c.name == name,
                   rate_limits.c.key == key).with_for_update())


def lock_buckets(scope: str, names: list[str], keys: list[str] | None = None) -> Select[Any]:
    """(name, key, tat) of these queues' buckets (``keys``: their key buckets), locked."""
    query = select(rate_limits.c.name, rate_limits.c.key, rate_limits.c.tat).where(
        rate_limits.c.scope == scope, rate_limits.c.name.in_(names))
    if keys is not None:
        query = query.where(rate_limits.c.key.in_(keys))
    return query.with_for_update()


def insert_bucket(scope: str, name: str, key: str, units: int, period_us: int, burst: int,
                  tat: int, now: int) -> Insert:
    return insert(rate_limits).values(scope=scope, name=name, key=key, units=units,
                                      period_us=period_us, burst=burst, tat=tat,
                                      updated_at=now)


def update_limit(name: str, units: int, period_us: int, burst: int, now: int) -> Update:
    """Change a named limit's rate; its bucket (``tat``) carries on."""
    return (update(rate_limits)
            .where(rate_limits.c.scope == LIMIT, rate_limits.c.name == name,
                   rate_limits.c.key == "")
            .values(units=units, period_us=period_us, burst=burst, updated_at=now))


def set_tat(scope: str, name: str, key: str, tat: int, now: int) -> Update:
    return (update(rate_limits)
            .where(rate_limits.c.scope == scope, rate_limits.c.name == name,
                   rate_limits.c.key == key)
            .values(tat=tat, updated_at=now))


def delete_limit(name: str) -> Delete:
    return delete(rate_limits).where(rate_limits.c.scope == LIMIT,
                                     rate_limits.c.name == name)


def delete_queue_buckets(queue: str) -> Delete:
    """A queue's claim-rate buckets (its own and its keys'), reset when its limits change."""
    return delete(rate_limits).where(rate_limits.c.scope.in_((QUEUE, KEY)),
                                     rate_limits.c.name == queue)


QUEUE_RATES = select(queues.c.name, queues.c.rate_units, queues.c.rate_period_us,
                     queues.c.key_rate_units, queues.c.key_rate_period_us)
