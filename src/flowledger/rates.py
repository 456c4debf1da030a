"""Rate strings (``"500/min"``), what ``@fl.step(rate_limit=…)`` asks of a named limit,
and a step's wait for it (the Ledger's side is ``ratelimits.py``; docs/rate-limits.md).

Example::

    ledger.set_rate_limit("openai", 500, per=timedelta(minutes=1))

    @fl.step(rate_limit="openai")
    def complete(prompt: str) -> str: ...
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import validation
from .errors import ConfigurationError

log = logging.getLogger("flowledger.ratelimit")

_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1,
          "min": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+)?\s*([a-z]+)\s*")
_NAMES = {1: "s", 60: "min", 3600: "h", 86400: "d"}
MAX_PERIOD_US = 366 * 86400 * 1_000_000
MAX_UNITS = 10**12
# A long wait is slept in slices, so a stopping worker or a cancelled run is noticed.
WAIT_SLICE_S = 2.0


def rate_error(text: Any) -> ConfigurationError:
    return ConfigurationError(
        f"a rate is a positive whole number per period, like 500/min, 100/s, 10/h or "
        f"20/10s (units: s, min, h, d), not {text!r}")


def parse_rate(text: str) -> tuple[int, int]:
    """``"500/min"`` as (units, period in microseconds); ConfigurationError if malformed,
    zero or negative.

    Example: ``parse_rate("100/s") == (100, 1_000_000)``
    """
    match = _RATE.fullmatch(text.lower()) if isinstance(text, str) else None
    if match is None or match.group(3) not in _UNITS:
        raise rate_error(text)
    units, count = int(match.group(1)), int(match.group(2) or 1)
    period_us = count * _UNITS[match.group(3)] * 1_000_000
    if not 1 <= units <= MAX_UNITS or not 0 < period_us <= MAX_PERIOD_US:
        raise rate_error(text)
    return units, period_us


def format_rate(units: int, period_us: int) -> str:
    """(units, period in µs) as a rate string. Example: ``format_rate(500, 60_000_000)``
    is ``"500/min"``."""
    seconds, rest = divmod(period_us, 1_000_000)
    if rest:
        return f"{units}/{period_us / 1_000_000:g}s"
    for size in (86400, 3600, 60, 1):
        if seconds % size == 0:
            count = seconds // size
            return f"{units}/{'' if count == 1 else count}{_NAMES[size]}"
    return f"{units}/{seconds}s"  # pragma: no cover (size 1 always divides)


def optional_rate(text: str | None) -> tuple[int, int] | None:
    return None if text is None else parse_rate(text)


Units = float | Callable[..., float]
# What ``@fl.step(rate_limit=…)`` takes: a limit's name, or (name, units).
RateSpec = str | tuple[str, Units] | None


@dataclass(frozen=True)
class StepRate:
    """What a step takes from a named limit at each attempt: ``units``, or a function of
    the step's arguments that computes them (e.g. estimated tokens)."""

    name: str
    units: Units = 1

    def cost(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> float:
        value = self.units(*args, **kwargs) if callable(self.units) else self.units
        return _units(value, f"the units computed for rate limit {self.name!r}")


def _units(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_UNITS:
        raise ConfigurationError(f"{what} must be a positive number, not {value!r}")
    return float(value)


def step_rate(value: Any) -> StepRate | None:
    """``@fl.step(rate_limit=…)``: a name, or (name, units or a function of the step's
    arguments); None for no limit. ConfigurationError for anything else."""
    if value is None:
        return None
    if isinstance(value, str):
        return StepRate(validation.name(value, "rate limit name"))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        name, units = value
        if not callable(units):
            units = _units(units, f"the units of rate limit {name!r}")
        return StepRate(validation.name(name, "rate limit name"), units)
    raise ConfigurationError("rate_limit is a limit's name, or (name, units) where units is "
                             f"a positive number or a function of the step's arguments; "
                             f"not {value!r}")


def wait_for(until: float, stopping: threading.Event | None,
             still_wanted: Callable[[], None]) -> bool:
    """Sleep until ``until`` (``time.time()`` seconds; no transaction is open) in slices:
    a worker that stops ends the wait at once (False), and ``still_wanted`` (which raises
    when the run was cancelled or taken over) is asked between slices. True: waited."""
    while (left := until - time.time()) > 0:
        if stopping is not None:
            if stopping.wait(min(left, WAIT_SLICE_S)):
                return False
        else:
            time.sleep(min(left, WAIT_SLICE_S))
        if until - time.time() > 0:
            still_wanted()
    return True


__all__ = ["MAX_PERIOD_US", "MAX_UNITS", "WAIT_SLICE_S", "RateSpec", "StepRate",
           "format_rate", "optional_rate", "parse_rate", "step_rate", "wait_for"]
