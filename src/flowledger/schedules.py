"""Cron schedules: a workflow submitted to a queue on every tick of a cron expression.

Ticks are computed by croniter: five fields (minute hour day month weekday), six with
seconds last, or a macro (``@hourly``, ``@daily``, ...), read in UTC or in a schedule's
IANA time zone (``timezone="Europe/Berlin"``: daylight saving time is handled as
croniter does — a wall-clock time skipped by the spring change fires at the first time
after it, an hour repeated in autumn fires once per tick of the expression). Workers
fire due ticks; each tick starts exactly one run however many workers there are, and
ticks missed while no worker ran are skipped (only the latest fires) unless the
schedule asks to ``catch_up``. A paused schedule fires nothing; resumed, it fires from
its next tick on.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError
from .models import from_micros
from .workflow import WorkflowDef, WorkflowRef, definition_of


def _croniter() -> Any:
    """croniter, imported when a schedule is first evaluated (start-up time)."""
    from croniter import croniter  # noqa: PLC0415 (start-up time)

    return croniter

# A schedule catching up on a long outage fires at most this many ticks per pass; the
# rest follow on the next passes, so one pass never holds its transaction for long.
MAX_TICKS_PER_PASS = 1000

# The tick at the end of a tick's idempotency key (``tick_key``: ISO 8601 in UTC).
_TICK_STAMP = re.compile(r":(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?\+00:00)$")

#: Macros a schedule may use instead of five fields, and what they stand for.
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}


@dataclass(frozen=True)
class Schedule:
    """A stored schedule, as ``Ledger.schedules()`` lists it.

    Example::

        for schedule in ledger.schedules():
            print(schedule.name, schedule.cron, schedule.next_fire_at)
    """

    name: str
    workflow: str
    cron: str
    queue: str
    priority: int
    catch_up: bool
    owner: str
    inputs: Any
    next_fire_at: datetime
    last_fired_at: datetime | None
    last_run_id: str | None
    #: The IANA time zone the expression is read in (None: UTC).
    timezone: str | None = None
    #: When it was paused (None: it fires).
    paused_at: datetime | None = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


@dataclass(frozen=True)
class ScheduleDecl:
    """A schedule declared in code with ``fl.schedule``; workers store it on start."""

    name: str
    workflow: WorkflowDef
    cron: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    catch_up: bool = False
    timezone: str | None = None


_declared: dict[str, ScheduleDecl] = {}
_declared_lock = threading.Lock()


def schedule(workflow: WorkflowRef, *, cron: str, name: str | None = None,
             inputs: Mapping[str, Any] | None = None, queue: str = "default",
             priority: int = 0, catch_up: bool = False,
             tz: str | None = None, timezone: str | None = None) -> ScheduleDecl:
    """Declare that ``workflow`` is submitted on every tick of ``cron`` (five fields, six
    with seconds last, or a macro such as ``@daily``), read in UTC or in the IANA zone
    ``tz`` (``timezone`` is the same, spelled out).

    Workers that import the declaring module store the schedule when they start (the
    next tick is kept when the expression did not change, and a pause stands). ``name``
    defaults to the workflow's name. ``catch_up=True`` fires every tick missed while no
    worker ran. The run of a tick learns its tick time from
    ``fl.current_run().scheduled_at``.

    Example::

        fl.schedule(nightly_report, cron="0 3 * * *", inputs={"team": "core"},
                    tz="Europe/Berlin")
    """
    definition = definition_of(workflow)
    check_cron(cron)
    timezone = check_timezone(zone_argument(tz, timezone))
    decl = ScheduleDecl(name or definition.name, definition, cron, dict(inputs or {}),
                        queue, priority, catch_up, timezone)
    with _declared_lock:
        _declared[decl.name] = decl
    return decl


def declared() -> list[ScheduleDecl]:
    with _declared_lock:
        return list(_declared.values())


def check_cron(cron: str) -> str:
    """``cron`` with its spaces normalised, or ConfigurationError saying what is allowed."""
    expression = " ".join(str(cron).split())
    if expression.startswith("@"):
        if expression.lower() not in MACROS:
            raise ConfigurationError(f"unknown cron macro {cron!r}; expected one of "
                                     f"{', '.join(MACROS)}")
        return expression.lower()
    if not expression or len(expression.split()) not in (5, 6) \
            or not _croniter().is_valid(expression):
        raise ConfigurationError(
            f"not a cron expression: {cron!r} (five fields: minute hour day month weekday, "
            "six with seconds last, or a macro such as @daily; e.g. '*/5 * * * *')")
    return expression


def zone_argument(tz: str | None, timezone: str | None) -> str | None:
    """The zone a caller gave as ``tz`` or ``timezone`` (one name, two spellings)."""
    if tz is not None and timezone is not None and tz != timezone:
        raise ConfigurationError(f"tz={tz!r} and timezone={timezone!r} disagree: give one")
    return tz if tz is not None else timezone


def check_timezone(timezone: str | None) -> str | None:
    """An IANA time zone name (``Europe/Berlin``), None for UTC, or ConfigurationError."""
    if timezone is None:
        return None
    _zone(timezone)
    return timezone


def _zone(timezone: str | None) -> tzinfo:
    if timezone is None:
        return UTC
    try:
        if not isinstance(timezone, str) or not timezone.strip() or len(timezone) > 64:
            raise ValueError(timezone)
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigurationError(f"unknown time zone {timezone!r}: use an IANA name such as "
                                 "'Europe/Berlin' or 'America/New_York' (None: UTC)") from None


def _iterator(cron: str, start_us: int, timezone: str | None) -> Any:
    start = datetime.fromtimestamp(start_us / 1_000_000, _zone(timezone))
    return _croniter()(MACROS.get(cron, cron), start)


def next_tick(cron: str, after_us: int, timezone: str | None = None) -> int:
    """The first tick strictly after ``after_us`` (microseconds since the epoch), the
    expression read in ``timezone`` (None: UTC).

    Example: ``next_tick("0 9 * * *", now_us, "Europe/Berlin")``
    """
    following: datetime = _iterator(cron, after_us, timezone).get_next(datetime)
    return int(following.timestamp() * 1_000_000)


def _latest_tick(cron: str, at_or_before_us: int, timezone: str | None) -> int:
    previous: datetime = _iterator(cron, at_or_before_us + 1, timezone).get_prev(datetime)
    return int(previous.timestamp() * 1_000_000)


def plan_ticks(cron: str, next_fire_at: int, catch_up: bool,
               now: int, timezone: str | None = None) -> tuple[list[int], int]:
    """The ticks to fire at ``now`` and the schedule's next tick after them."""
    if next_fire_at > now:
        return [], next_fire_at
    if not catch_up:
        latest = max(next_fire_at, _latest_tick(cron, now, timezone))
        return [latest], next_tick(cron, latest, timezone)
    ticks: list[int] = []
    tick = next_fire_at
    while tick <= now and len(ticks) < MAX_TICKS_PER_PASS:
        ticks.append(tick)
        tick = next_tick(cron, tick, timezone)
    return ticks, tick


def tick_key(name: str, tick: int) -> str:
    """The idempotency key of one tick's run: a second firing of it inserts nothing."""
    stamp = from_micros(tick)
    return f"schedule:{name}:{stamp.isoformat() if stamp else tick}"


def tick_of(idempotency_key: str | None) -> datetime | None:
    """The tick a schedule's run was started for, read back from its idempotency key
    (``tick_key``); None for any other run. The key stays with the run for its life,
    whereas its ``scheduled_at`` is cleared when it is handed back or wakes from a wait."""
    if not idempotency_key or not idempotency_key.startswith("schedule:"):
        return None
    found = _TICK_STAMP.search(idempotency_key)
    return None if found is None else datetime.fromisoformat(found.group(1))
