"""Richer schedules: time zones across daylight saving changes (croniter computed, the
clock injected: no waiting), macros, pause / resume / trigger, and the tick time a
scheduled run sees (``fl.current_run().scheduled_at``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import flowledger as fl
from flowledger.schedules import next_tick, plan_ticks, tick_of

BERLIN = "Europe/Berlin"


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _last_sunday(year: int, month: int) -> datetime:
    """The last Sunday of a month (the EU changes its clocks then), at midnight UTC."""
    day = datetime(year, month + 1, 1, tzinfo=UTC) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


@fl.step
def note(text: str) -> str:
    return text


@fl.workflow(name="sched_tick")
def sched_tick(label: str) -> dict[str, object]:
    info = fl.current_run()
    tick = info.scheduled_at
    return {"label": note(label), "tick": None if tick is None else tick.isoformat(),
            "workflow": info.workflow, "queue": info.queue}


@contextmanager
def running_worker(db_url: str, **options: object) -> Iterator[fl.Worker]:
    worker = fl.Worker(db_url, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive()


def test_next_ticks_in_a_dst_zone_are_the_right_utc_instants() -> None:
    # 2026-03-29: Berlin goes from CET (+1) to CEST (+2) at 02:00 local (01:00 UTC);
    # 2026-10-25: back to CET at 03:00 local (01:00 UTC).
    march = _us(datetime(2026, 3, 27, 12, tzinfo=UTC))
    ticks, after = [], march
    for _ in range(3):
        after = next_tick("0 9 * * *", after, BERLIN)
        ticks.append(_utc(after))
    assert ticks == [datetime(2026, 3, 28, 8, tzinfo=UTC),  # 09:00 CET
                     datetime(2026, 3, 29, 7, tzinfo=UTC),  # 09:00 CEST
                     datetime(2026, 3, 30, 7, tzinfo=UTC)]
    # 02:30 does not exist on the night of the change: croniter fires at 03:00 CEST.
    skipped = next_tick("30 2 * * *", _us(datetime(2026, 3, 28, 12, tzinfo=UTC)), BERLIN)
    assert _utc(skipped) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    # Hourly across the autumn change: every UTC hour once, the repeated 02:00 twice.
    hours, after = [], _us(datetime(2026, 10, 24, 23, 30, tzinfo=UTC))
    for _ in range(4):
        after = next_tick("@hourly", after, BERLIN)
        hours.append(_utc(after))
    assert hours == [datetime(2026, 10, 25, h, tzinfo=UTC) for h in range(4)]
    # The same expression in UTC (no zone) and in New York.
    assert _utc(next_tick("0 9 * * *", march)) == datetime(2026, 3, 28, 9, tzinfo=UTC)
    assert _utc(next_tick("0 9 * * *", march, "America/New_York")) == datetime(
        2026, 3, 27, 13, tzinfo=UTC)  # 09:00 EDT the same day
    # The due logic with an injected clock: only the latest missed tick, or all of them.
    start = _us(datetime(2026, 3, 28, 8, tzinfo=UTC))
    now = _us(datetime(2026, 3, 30, 7, 30, tzinfo=UTC))
    assert plan_ticks("0 9 * * *", start, False, now, BERLIN) == (
        [_us(datetime(2026, 3, 30, 7, tzinfo=UTC))], _us(datetime(2026, 3, 31, 7, tzinfo=UTC)))
    assert plan_ticks("0 9 * * *", start, True, now, BERLIN)[0] == [
        start, _us(datetime(2026, 3, 29, 7, tzinfo=UTC)), _us(datetime(2026, 3, 30, 7, tzinfo=UTC))]
    assert plan_ticks("0 9 * * *", start, True, start - 1, BERLIN) == ([], start)


def test_a_berlin_schedule_fires_at_the_right_instants_across_the_spring_change(
        db_url: str) -> None:
    change = _last_sunday(datetime.now(UTC).year + 1, 3)  # ahead of the real clock
    with fl.Ledger(db_url) as ledger:
        saved = ledger.add_schedule(sched_tick, cron="0 9 * * *", name="berlin",
                                    inputs={"label": "x"}, timezone=BERLIN, queue="sched")
        assert saved.timezone == BERLIN and not saved.paused
        saturday_9 = change - timedelta(days=1) + timedelta(hours=8)  # 09:00 CET
        sunday_9 = change + timedelta(hours=7)  # 09:00 CEST
        assert len(ledger.fire_schedules(now=saturday_9)) == 1  # the latest missed tick
        assert ledger.schedules()[0].next_fire_at == sunday_9
        assert ledger.fire_schedules(now=sunday_9 - timedelta(microseconds=1)) == []
        (fired,) = ledger.fire_schedules(now=sunday_9)
        assert ledger.schedules()[0].next_fire_at == sunday_9 + timedelta(days=1)
        keys = [run.idempotency_key for run in ledger.runs(tag="schedule:berlin").runs]
        assert keys == [f"schedule:berlin:{sunday_9.isoformat()}",
                        f"schedule:berlin:{saturday_9.isoformat()}"]
        with running_worker(db_url, queues=["sched"]):
            output = ledger.result(fired, timeout=60)
        assert output == {"label": "x", "tick": sunday_9.isoformat(),
                          "workflow": "sched_tick", "queue": "sched"}


def test_pause_resume_and_trigger_a_schedule(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        saved = ledger.add_schedule(sched_tick, cron="@daily", name="daily",
                                    inputs={"label": "d"}, queue="sched")
        assert saved.cron == "@daily"
        assert saved.next_fire_at.time() == datetime.min.time()  # midnight UTC
        assert ledger.pause_schedule("daily") is True
        assert ledger.pause_schedule("daily") is False  # already paused
        assert ledger.schedules()[0].paused
        later = saved.next_fire_at + timedelta(days=3)
        assert ledger.fire_schedules(now=later) == []  # paused: nothing fires
        # Declaring it again (a worker starting) keeps the pause.
        ledger.add_schedule(sched_tick, cron="@daily", name="daily", inputs={"label": "d"},
                            queue="sched")
        assert ledger.schedules()[0].paused
        # Trigger now: one run at once, paused or not; the next tick is unchanged.
        before = datetime.now(UTC)
        handle = ledger.trigger_schedule("daily")
        assert ledger.schedules()[0].next_fire_at == saved.next_fire_at
        assert ledger.get(handle.id, steps=False).tags == ("schedule:daily",)
        with running_worker(db_url, queues=["sched"]):
            output = handle.result(timeout=60)
        tick = datetime.fromisoformat(output["tick"])
        assert before <= tick <= datetime.now(UTC)
        assert ledger.resume_schedule("daily") is True
        assert ledger.resume_schedule("daily") is False
        resumed = ledger.schedules()[0]
        assert not resumed.paused and resumed.next_fire_at > before
        with pytest.raises(fl.ScheduleNotFound):
            ledger.pause_schedule("nope")
        with pytest.raises(fl.ScheduleNotFound):
            ledger.trigger_schedule("nope")
        with pytest.raises(fl.ScheduleNotFound):
            ledger.resume_schedule("nope")
        # Another owner's Ledger sees none of it.
        with pytest.raises(fl.ScheduleNotFound):
            ledger.for_owner("mallory").trigger_schedule("daily")


@fl.workflow(name="sched_tz_flow")
def sched_flow_for_tz() -> int:
    return 1


def test_tz_is_the_issue_s_spelling_of_timezone(ledger: fl.Ledger) -> None:
    saved = ledger.add_schedule(sched_flow_for_tz, cron="0 9 * * *", tz="Europe/Berlin")
    assert saved.timezone == "Europe/Berlin"
    assert saved.next_fire_at is not None
    assert saved.next_fire_at.astimezone(ZoneInfo("Europe/Berlin")).hour == 9
    with pytest.raises(fl.ConfigurationError, match="disagree"):
        ledger.add_schedule(sched_flow_for_tz, cron="0 9 * * *", tz="Europe/Berlin",
                            timezone="Asia/Tokyo")


def test_bad_time_zones_and_macros_are_refused(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.ConfigurationError, match="unknown time zone 'Mars/Olympus'"):
        ledger.add_schedule(sched_tick, cron="0 9 * * *", inputs={"label": "x"},
                            timezone="Mars/Olympus")
    with pytest.raises(fl.ConfigurationError, match="unknown time zone"):
        fl.schedule(sched_tick, cron="0 9 * * *", timezone="../etc/passwd")
    with pytest.raises(fl.ConfigurationError, match="unknown cron macro '@fortnightly'"):
        ledger.add_schedule(sched_tick, cron="@fortnightly", inputs={"label": "x"})
    assert ledger.schedules() == []


def test_tick_of_reads_only_tick_keys() -> None:
    tick = datetime(2026, 3, 29, 7, tzinfo=UTC)
    assert tick_of(f"schedule:a:b:{tick.isoformat()}") == tick
    assert tick_of("schedule:a:not-a-time") is None
    assert tick_of("issue-42") is None and tick_of(None) is None


def test_current_run_outside_a_run_is_refused() -> None:
    with pytest.raises(fl.NotInRun, match="current_run"):
        fl.current_run()
