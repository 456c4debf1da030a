"""Pausing and resuming runs, on both backends: a run stops before its next step (the
step in flight finishes and is recorded), holds no worker, and continues on resume with
every step run once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import flowledger as fl
from tests.contract.test_queueing import q_plain, running_worker
from tests.helpers.workers import wait_until

arrived = threading.Event()
go_on = threading.Event()
ran: list[str] = []


@fl.step
def first(n: int) -> int:
    ran.append("first")
    return n + 1


@fl.step
def held(n: int) -> int:
    ran.append("held")
    arrived.set()
    assert go_on.wait(30), "the test never let the step finish"
    return n * 10


@fl.step
def last(n: int) -> int:
    ran.append("last")
    return n + 5


@fl.workflow(name="pausable")
def pausable(n: int) -> int:
    return last(held(first(n)))


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    arrived.clear()
    go_on.clear()
    ran.clear()
    yield
    go_on.set()


def test_a_running_run_stops_before_its_next_step_and_resumes_here(
        ledger: fl.Ledger) -> None:
    handle = ledger.start(pausable, 1)
    assert arrived.wait(30)
    assert ledger.pause(handle.id, reason="waiting for a key")
    go_on.set()  # the step in flight finishes...
    with pytest.raises(fl.RunPaused, match="was paused"):
        handle.result(timeout=30)
    run = ledger.get(handle.id)
    assert run.status is fl.RunStatus.PAUSED
    assert [(s.name, s.status.value) for s in run.steps] == [("first", "completed"),
                                                            ("held", "completed")]
    assert run.executor is None and run.pause_reason == "waiting for a key"
    assert run.paused_at is not None and run.paused_by == ledger.identity
    assert not ledger.pause(handle.id)  # paused already
    batch = ledger.events(handle.id)
    assert [(e.type, e.reason) for e in batch.events][-1] == ("run.paused", "waiting for a key")
    assert not batch.finished and ledger.events(handle.id, after=batch.cursor).events == ()
    assert ledger.resume(handle.id).result(timeout=30) == 25
    later = [e.type for e in ledger.events(handle.id, after=batch.cursor).events]
    assert later == ["run.resumed", "step.started", "step.completed", "run.completed"]
    assert ran == ["first", "held", "last"]  # ...and is never run again
    done = ledger.get(handle.id)
    assert done.status is fl.RunStatus.COMPLETED and done.paused_at is None


def test_a_paused_pending_run_is_not_claimed_until_resumed(ledger: fl.Ledger,
                                                           db_url: str) -> None:
    go_on.set()
    paused = ledger.submit(pausable, 2)
    assert ledger.pause(paused.id, by="ops")
    probe = ledger.submit(q_plain, 1)  # submitted after it, same queue
    with running_worker(db_url):
        assert probe.result(timeout=60) == 2
        assert paused.status() is fl.RunStatus.PAUSED  # the claim passed it over
        ledger.resume(paused.id)
        assert ledger.get(paused.id, steps=False).status in (fl.RunStatus.PENDING,
                                                             fl.RunStatus.RUNNING,
                                                             fl.RunStatus.COMPLETED)
        assert paused.result(timeout=60) == 35
    assert ran == ["first", "held", "last"]


def test_pausing_a_queued_run_frees_its_worker_slot(ledger: fl.Ledger, db_url: str) -> None:
    running = ledger.submit(pausable, 3)
    with running_worker(db_url, concurrency=1):
        assert arrived.wait(30)
        assert ledger.pause(running.id, reason="maintenance")
        go_on.set()

        def released() -> bool:
            run = ledger.get(running.id, steps=False)
            return run.status is fl.RunStatus.PAUSED and run.executor is None

        wait_until(released, what="the paused run to be let go")
        other = ledger.submit(q_plain, 5)
        assert other.result(timeout=60) == 6  # the one slot was free for it
        assert ledger.get(running.id).status is fl.RunStatus.PAUSED
        ledger.resume(running.id)
        assert running.result(timeout=60) == 45
    assert ran == ["first", "held", "last"]


def test_pause_rules(ledger: fl.Ledger) -> None:
    go_on.set()
    done = ledger.start(pausable, 1)
    assert done.result(timeout=30) == 25
    assert not ledger.pause(done.id)  # finished: nothing to pause
    queued = ledger.submit(pausable, 1, owner="alice")
    with pytest.raises(fl.RunNotFound):
        ledger.for_owner("bob").pause(queued.id)
    with pytest.raises(fl.ConfigurationError, match="1 to 500"):
        ledger.pause(queued.id, reason="")
    assert ledger.for_owner("alice").pause(queued.id)
    assert ledger.cancel(queued.id)  # a paused run can be cancelled
    assert ledger.get(queued.id).status is fl.RunStatus.CANCELLED
