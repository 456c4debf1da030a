"""Cron schedules: a workflow submitted to a queue on every tick of a cron expression.

Ticks are computed in UTC by croniter: five fields (minute hour day month weekday), or
six with seconds last. Workers fire due ticks; each tick starts exactly one run however
many workers there are, and ticks missed while no worker ran are skipped (only the
latest fires) unless the schedule asks to ``catch_up``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


_declared: dict[str, ScheduleDecl] = {}
_declared_lock = threading.Lock()


def schedule(workflow: WorkflowRef, *, cron: str, name: str | None = None,
             inputs: Mapping[str, Any] | None = None, queue: str = "default",
             priority: int = 0, catch_up: bool = False) -> ScheduleDecl:
    """Declare that ``workflow`` is submitted on every tick of ``cron`` (UTC).

    Workers that import the declaring module store the schedule when they start (the
    next tick is kept when the expression did not change). ``name`` defaults to the
    workflow's name. ``catch_up=True`` fires every tick missed while no worker ran.

    Example::

        fl.schedule(nightly_report, cron="0 3 * * *", inputs={"team": "core"})
    """
    definition = definition_of(workflow)
    check_cron(cron)
    decl = ScheduleDecl(name or definition.name, definition, cron, dict(inputs or {}),
                        queue, priority, catch_up)
    with _declared_lock:
        _declared[decl.name] = decl
    return decl


def declared() -> list[ScheduleDecl]:
    with _declared_lock:
        return list(_declared.values())


def check_cron(cron: str) -> str:
    expression = " ".join(str(cron).split())
    if not expression or len(expression.split()) not in (5, 6) \
            or not _croniter().is_valid(expression):
        raise ConfigurationError(
            f"not a cron expression: {cron!r} (five fields: minute hour day month weekday, "
            "or six with seconds last; e.g. '*/5 * * * *')")
    return expression


def next_tick(cron: str, after_us: int) -> int:
    """The first tick strictly after ``after_us`` (microseconds since the epoch, UTC)."""
    start = datetime.fromtimestamp(after_us / 1_000_000, UTC)
    following: datetime = _croniter()(cron, start).get_next(datetime)
    return int(following.timestamp() * 1_000_000)


def _latest_tick(cron: str, at_or_before_us: int) -> int:
    start = datetime.fromtimestamp((at_or_before_us + 1) / 1_000_000, UTC)
    previous: datetime = _croniter()(cron, start).get_prev(datetime)
    return int(previous.timestamp() * 1_000_000)


def plan_ticks(cron: str, next_fire_at: int, catch_up: bool,
               now: int) -> tuple[list[int], int]:
    """The ticks to fire at ``now`` and the schedule's next tick after them."""
    if next_fire_at > now:
        return [], next_fire_at
    if not catch_up:
        latest = max(next_fire_at, _latest_tick(cron, now))
        return [latest], next_tick(cron, latest)
    ticks: list[int] = []
    tick = next_fire_at
    while tick <= now and len(ticks) < MAX_TICKS_PER_PASS:
        ticks.append(tick)
        tick = next_tick(cron, tick)
    return ticks, tick


def tick_key(name: str, tick: int) -> str:
    """The idempotency key of one tick's run: a second firing of it inserts nothing."""
    stamp = from_micros(tick)
    return f"schedule:{name}:{stamp.isoformat() if stamp else tick}"
