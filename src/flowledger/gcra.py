"""GCRA, the arithmetic of shared rate limits (no I/O: the store applies it to a row).

A limit lets ``units`` through per ``period_us``: one unit costs the emission interval
``period_us / units``. A bucket is one number, its *theoretical arrival time* ``tat``:
when the bucket would be empty again. A request may start once ``tat`` is at most
``burst - 1`` intervals ahead of the clock (``burst`` units may start at once after a
quiet spell), and pushes ``tat`` on by its own cost. A request costing many units (an
estimate of LLM tokens) starts as soon as the bucket allows and the requests after it
pay for it, so the long-run rate is exact and a large request never waits on an idle
bucket.

Example::

    start, tat = reserve(tat=0, now=1_000_000, units=1, period_us=1_000_000, rate=20,
                         burst=1)   # (1_000_000, 1_050_000): starts now, next at +50 ms
"""

from __future__ import annotations

import math


def cost_us(units: float, period_us: int, rate: int) -> int:
    """What ``units`` cost in microseconds of bucket time (rounded up: never faster)."""
    return math.ceil(units * period_us / rate)


def start_at(tat: int, now: int, period_us: int, rate: int, burst: int) -> int:
    """When a request may start on a bucket at ``tat``: now, or later if it is full."""
    return max(now, tat - cost_us(burst - 1, period_us, rate))


def reserve(tat: int, now: int, units: float, period_us: int, rate: int,
            burst: int) -> tuple[int, int]:
    """Reserve ``units``: (when the request may start, the bucket's new ``tat``).

    Reserving in commit order makes waiters first come, first served: each one's start
    is fixed when it reserves, and no later request can take it.
    """
    start = start_at(tat, now, period_us, rate, burst)
    return start, max(tat, now) + cost_us(units, period_us, rate)


def start_from(new_tat: int, now: int, units: float, period_us: int, rate: int,
               burst: int) -> int:
    """The start ``reserve`` gave, from the ``tat`` it returned: a reservation made as one
    SQL statement returns only the new state. (If the old ``tat`` was at most ``now`` the
    start is ``now``; else the old one is ``new_tat`` less the cost.)"""
    old = new_tat - cost_us(units, period_us, rate)
    return max(now, old - cost_us(burst - 1, period_us, rate))


def admits(tat: int, now: int, period_us: int, rate: int, burst: int) -> bool:
    """Whether a one-unit request conforms now (a claim checks, it never waits)."""
    return start_at(tat, now, period_us, rate, burst) <= now


__all__ = ["admits", "cost_us", "reserve", "start_at", "start_from"]
