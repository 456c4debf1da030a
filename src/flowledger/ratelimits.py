"""Shared rate limits, the Ledger's side: named limits stored in the database and
enforced across every worker and process (see docs/rate-limits.md).

Example::

    ledger.set_rate_limit("openai", 500, per=timedelta(minutes=1))

    @fl.step(rate_limit="openai")
    def complete(prompt: str) -> str: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from . import ids, validation
from .errors import ConfigurationError
from .ledgerbase import LedgerBase
from .models import from_micros
from .rates import MAX_PERIOD_US, MAX_UNITS, format_rate


@dataclass(frozen=True)
class RateLimit:
    """A named limit shared by every worker: ``limit`` units per ``per``, ``burst`` units
    at once after a quiet spell (``Ledger.rate_limits()``).

    Example: ``{r.name: r.rate for r in ledger.rate_limits()}``
    """

    name: str
    limit: int
    per: timedelta
    burst: int
    updated_at: datetime | None

    @property
    def rate(self) -> str:
        """The limit as a rate string, e.g. ``"500/min"``."""
        return format_rate(self.limit, round(self.per.total_seconds() * 1_000_000))



class LedgerRateLimits(LedgerBase):
    """Named rate limits, a part of ``Ledger``."""

    def set_rate_limit(self, name: str, limit: int, per: timedelta = timedelta(seconds=1),
                       *, burst: int = 1) -> RateLimit:
        """Create or change the named limit ``limit`` units per ``per``, shared by every
        worker and process on this database; steps take from it with
        ``@fl.step(rate_limit=name)``. ``burst`` units may start at once after a quiet
        spell (1: evenly spaced). Changing a limit keeps the waits already promised.

        Example: ``ledger.set_rate_limit("openai", 500, per=timedelta(minutes=1))``
        """
        name = validation.name(name, "rate limit name")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_UNITS:
            raise ConfigurationError(f"a rate limit is a positive whole number of units, "
                                     f"not {limit!r}")
        if not isinstance(per, timedelta):
            raise ConfigurationError(f"per is a timedelta, not {per!r}")
        period_us = round(per.total_seconds() * 1_000_000)
        if not 1000 <= period_us <= MAX_PERIOD_US:
            raise ConfigurationError(f"per must be between 1 ms and 366 days, not {per}")
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= limit:
            raise ConfigurationError(f"burst must be a whole number from 1 to the limit "
                                     f"({limit}), not {burst!r}")
        now = ids.now_us()
        self.store.save_rate_limit(name, limit, period_us, burst, now)
        return RateLimit(name, limit, timedelta(microseconds=period_us), burst,
                         from_micros(now))

    def rate_limits(self) -> list[RateLimit]:
        """Every named rate limit, by name (queue rates are in ``queues()``).

        Example: ``[r.rate for r in ledger.rate_limits()]``
        """
        return [RateLimit(row.name, row.units, timedelta(microseconds=row.period_us),
                          row.burst, from_micros(row.updated_at))
                for row in self.store.rate_limit_rows()]

    def remove_rate_limit(self, name: str) -> bool:
        """Delete a named limit; False when there was none. Steps that name it then fail
        with ConfigurationError until it is set again.

        Example: ``ledger.remove_rate_limit("openai")``
        """
        return self.store.delete_rate_limit(validation.name(name, "rate limit name"))


__all__ = ["LedgerRateLimits", "RateLimit"]
