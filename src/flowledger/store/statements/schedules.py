"""Schedules: cron declarations whose due ticks start runs."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Delete, Insert, Select, Update, delete, func, insert, select, update

from ..rows import ScheduleRow
from ..schema import schedules

# When the next tick of a schedule that is not paused is due.
NEXT_FIRE_AT = select(func.min(schedules.c.next_fire_at)).where(
    schedules.c.paused_at.is_(None))


def _schedule_values(schedule: ScheduleRow) -> dict[str, Any]:
    values = {name: getattr(schedule, name) for name in ScheduleRow.__slots__}
    values["catch_up"] = int(schedule.catch_up)
    return values


def lock_schedule(name: str) -> Select[Any]:
    """A schedule by name, its row locked until the transaction ends."""
    return select(schedules).where(schedules.c.name == name).with_for_update()


def insert_schedule(schedule: ScheduleRow) -> Insert:
    return insert(schedules).values(**_schedule_values(schedule))


def delete_schedule(name: str, owner: str | None) -> Delete:
    """Delete the schedule ``name`` if it is the owner's (None: anyone's)."""
    query = delete(schedules).where(schedules.c.name == name)
    if owner is not None:
        query = query.where(schedules.c.owner == owner)
    return query


def list_schedules(owner: str | None) -> Select[Any]:
    """The owner's schedules (None: all), by name."""
    query = select(schedules).order_by(schedules.c.name)
    if owner is not None:
        query = query.where(schedules.c.owner == owner)
    return query


def get_schedule(name: str, owner: str | None) -> Select[Any]:
    """The schedule ``name`` if it is the owner's (None: anyone's)."""
    query = select(schedules).where(schedules.c.name == name)
    if owner is not None:
        query = query.where(schedules.c.owner == owner)
    return query


def due_schedules(now: int) -> Select[Any]:
    """Schedules not paused with a tick due, locked (those another worker is firing are
    skipped)."""
    return (select(schedules).where(schedules.c.next_fire_at <= now,
                                    schedules.c.paused_at.is_(None))
            .with_for_update(skip_locked=True))


def pause_schedule(name: str, owner: str | None, now: int) -> Update:
    """Pause the schedule ``name`` (the owner's; None: anyone's) unless it is paused."""
    query = update(schedules).where(schedules.c.name == name,
                                    schedules.c.paused_at.is_(None))
    if owner is not None:
        query = query.where(schedules.c.owner == owner)
    return query.values(paused_at=now)


def resume_schedule(name: str, owner: str | None, next_fire_at: int) -> Update:
    """Resume a paused schedule at ``next_fire_at`` (ticks due while paused are skipped)."""
    query = update(schedules).where(schedules.c.name == name,
                                    schedules.c.paused_at.is_not(None))
    if owner is not None:
        query = query.where(schedules.c.owner == owner)
    return query.values(paused_at=None, next_fire_at=next_fire_at)


def advance_schedule(name: str, next_fire_at: int, last_run_id: uuid.UUID | None,
                     last_fired_at: int | None) -> Update:
    """Record what a schedule fired and when it fires next."""
    return update(schedules).where(schedules.c.name == name).values(
        next_fire_at=next_fire_at, last_run_id=last_run_id, last_fired_at=last_fired_at)
