"""Queue behaviour checked in one process (workers on threads, each with its own Ledger
and connections): lost workers, unrunnable runs, shutdown, schedules, bad input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

import flowledger as fl
from flowledger import ids
from flowledger.store import NewRun

release = threading.Event()
reached = threading.Event()
executions: list[int] = []


@fl.step
def blocking(n: int) -> int:
    executions.append(n)
    reached.set()
    assert release.wait(30), "the test never released the step"
    return n * 10


@fl.step
def plain(n: int) -> int:
    return n + 1


@fl.workflow(name="q_blocking")
def q_blocking(n: int) -> int:
    return plain(blocking(n))


@fl.workflow(name="q_plain")
def q_plain(n: int) -> int:
    return plain(n)


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    release.clear()
    reached.clear()
    executions.clear()
    yield
    release.set()


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


def abandon_claim(ledger: fl.Ledger, queue: str = "default") -> None:
    """What a worker killed right after claiming leaves behind: a held run whose lease
    has already run out."""
    result = ledger.store.claim_runs([queue], "gone-host:1:1", 10, 1, 5, ids.now_us,
                                     ids.new_token)
    assert result.claimed


def test_a_run_whose_worker_was_lost_resumes_elsewhere(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.submit(q_plain, 1)
        abandon_claim(ledger)
        assert handle.status() is fl.RunStatus.RUNNING
        with running_worker(db_url, max_recoveries=1):
            assert handle.result(timeout=30) == 2
        assert handle.get().recovery_attempts == 1


def test_a_run_lost_too_often_fails_with_the_reason(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.submit(q_plain, 1)
        abandon_claim(ledger)
        with running_worker(db_url, max_recoveries=0), pytest.raises(fl.RunFailed) as failed:
            handle.result(timeout=30)
        assert failed.value.error_type == "flowledger.WorkerLost"
        assert "lost 1 times" in str(failed.value)


def test_a_run_a_worker_cannot_load_fails_with_the_reason(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        run_id = ids.new_run_id()
        ledger.store.submit_run(NewRun(
            id=run_id, workflow="vanished", version="1", entrypoint="no_such_module:wf",
            owner="default", status="pending", serializer="json", inputs="{}",
            created_at=ids.now_us(), executor=None, lease_token=None, queue="default"))
        with running_worker(db_url), pytest.raises(fl.RunFailed) as failed:
            ledger.handle(run_id).result(timeout=30)
        assert "no_such_module" in str(failed.value)


def test_shutdown_past_its_timeout_hands_the_run_back_and_fences_the_step(
        db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.submit(q_blocking, 4)
        with running_worker(db_url, shutdown_timeout=0.2) as worker:
            assert reached.wait(30)
            assert [w.runs_held for w in ledger.workers()] == [1]
            worker.stop()
        run = handle.get()
        assert run.status is fl.RunStatus.PENDING
        assert run.steps[0].status is fl.StepStatus.RUNNING  # in flight when handed back
        release.set()  # the old step now finishes, but may not record its result
        with running_worker(db_url):
            assert handle.result(timeout=30) == 41
        run = handle.get()
        assert run.steps[0].attempts == 2 and executions == [4, 4]
        assert run.recovery_attempts == 0


def test_queues_report_depth_and_limits(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        ledger.set_queue_limits("reports", concurrency=3, key_concurrency=1)
        ledger.submit(q_plain, 1, queue="reports")
        ledger.submit(q_plain, 2, queue="reports", delay=timedelta(hours=1))
        (info,) = ledger.queues()
        assert (info.name, info.ready, info.delayed, info.running) == ("reports", 1, 1, 0)
        assert (info.concurrency, info.key_concurrency) == (3, 1)
        ledger.set_queue_limits("reports")
        (info,) = ledger.queues()
        assert info.concurrency is None


def test_missed_ticks_fire_once_unless_catching_up(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        quiet = ledger.add_schedule(q_plain, cron="* * * * *", name="quiet", inputs={"n": 1})
        eager = ledger.add_schedule(q_plain, cron="* * * * *", name="eager", inputs={"n": 1},
                                    catch_up=True)
        later = quiet.next_fire_at + timedelta(minutes=9, seconds=30)
        fired = ledger.fire_schedules(now=later)
        assert len(ledger.fire_schedules(now=later)) == 0  # a second pass: nothing new
        by_schedule = {name: list(ledger.runs(tag=f"schedule:{name}", limit=100))
                       for name in ("quiet", "eager")}
        assert len(fired) == 11
        assert len(by_schedule["quiet"]) == 1 and len(by_schedule["eager"]) == 10
        newest = eager.next_fire_at + timedelta(minutes=9)
        assert by_schedule["quiet"][0].idempotency_key == f"schedule:quiet:{newest.isoformat()}"
        assert {s.name: s.next_fire_at for s in ledger.schedules()} == {
            "eager": newest + timedelta(minutes=1), "quiet": newest + timedelta(minutes=1)}


def test_redeclaring_a_schedule_keeps_its_next_tick(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        first = ledger.add_schedule(q_plain, cron="0 3 * * *", name="nightly",
                                    inputs={"n": 1})
        ledger.fire_schedules(now=first.next_fire_at)
        again = ledger.add_schedule(q_plain, cron="0 3 * * *", name="nightly",
                                    inputs={"n": 2})
        assert again.next_fire_at == first.next_fire_at + timedelta(days=1)
        moved = ledger.add_schedule(q_plain, cron="0 4 * * *", name="nightly",
                                    inputs={"n": 2})
        assert moved.next_fire_at.hour == 4  # a new expression starts from now
        assert ledger.schedules()[0].inputs == {"n": 2}
        assert ledger.remove_schedule("nightly") and not ledger.remove_schedule("nightly")


@pytest.mark.parametrize(("options", "message"), [
    ({"queue": ""}, "queue must be"),
    ({"priority": 10**9}, "priority must be"),
    ({"delay": -1}, "delay must be"),
    ({"idempotency_key": "x" * 201}, "idempotency_key must be"),
])
def test_bad_submit_options_are_refused(ledger: fl.Ledger, options: dict[str, object],
                                        message: str) -> None:
    with pytest.raises(fl.ConfigurationError, match=message):
        ledger.submit(q_plain, 1, **options)  # type: ignore[arg-type]
    assert len(ledger.runs()) == 0


def test_bad_schedules_limits_and_worker_options_are_refused(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.ConfigurationError, match="not a cron expression"):
        ledger.add_schedule(q_plain, cron="every minute", inputs={"n": 1})
    with pytest.raises(fl.ConfigurationError, match="concurrency must be"):
        ledger.set_queue_limits("q", concurrency=0)
    with pytest.raises(fl.ConfigurationError, match="concurrency must be"):
        fl.Worker(ledger=ledger, concurrency=0)
    with pytest.raises(fl.ConfigurationError, match="lease must be"):
        fl.Worker(ledger=ledger, lease=0)
    assert ledger.schedules() == []


def test_idempotency_keys_belong_to_an_owner(ledger: fl.Ledger) -> None:
    mine = ledger.submit(q_plain, 1, idempotency_key="k", owner="alice")
    theirs = ledger.submit(q_plain, 1, idempotency_key="k", owner="bob")
    assert mine.id != theirs.id
    assert ledger.submit(q_plain, 5, idempotency_key="k", owner="alice").id == mine.id
    assert ledger.get(mine.id).inputs == {"n": 1}  # the first submission's inputs stand


def test_a_queued_run_resumed_in_process_is_not_taken_by_workers(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.submit(q_blocking, 2)
        abandon_claim(ledger)  # its worker is gone; resume it here instead of waiting
        resumed = ledger.resume(handle.id, force=True)
        assert reached.wait(30)
        with running_worker(db_url) as worker:
            assert worker.store.claim_runs(["default"], "probe:1:1", 5, 1_000_000, 5,
                                           ids.now_us, ids.new_token).claimed == []
        release.set()
        assert resumed.result(timeout=30) == 21
        assert executions == [2] and handle.get().recovery_attempts == 1
