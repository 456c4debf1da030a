"""Durable sleeps and event waits, on both backends: recorded as steps, replayed on
resume, events kept until a wait takes them (each once), payloads checked against the
wait's model, timeouts, and waiting runs that hold no worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import BaseModel

import flowledger as fl
from tests.contract.test_queueing import running_worker
from tests.helpers.workers import wait_until

ran: list[str] = []
arrived = threading.Event()
go_on = threading.Event()


class Approval(BaseModel):
    approved: bool
    by: str
    note: str = ""


@fl.step
def noted(what: str) -> str:
    ran.append(what)
    return what


@fl.step
def held(what: str) -> str:
    ran.append(what)
    arrived.set()
    assert go_on.wait(30), "the test never let the step finish"
    return what


@fl.workflow(name="w_nap")
def nap(seconds: float) -> str:
    noted("before")
    fl.sleep(seconds)
    return noted("after")


@fl.workflow(name="w_approval")
def approval(timeout: float | None = None) -> dict[str, object]:
    noted("asked")
    decision = fl.wait_for_event("approve", timeout=timeout, model=Approval)
    noted("decided")
    return decision.model_dump()


@fl.workflow(name="w_positional")
def positional() -> bool:
    decision = fl.wait_for_event("approve", None, Approval)  # the signature
    return decision.approved


@fl.workflow(name="w_patient")
def patient(timeout: float) -> str:
    try:
        fl.wait_for_event("never", timeout=timeout)
    except fl.WaitTimeout:
        return noted("gave up")
    return noted("got it")


@fl.workflow(name="w_two_waits")
def two_waits() -> list[object]:
    held("gate")
    return [fl.wait_for_event("ping"), fl.wait_for_event("ping")]


@fl.workflow(name="w_wait_in_step")
def wait_in_step() -> None:
    sleepy_step()


@fl.step
def sleepy_step() -> None:
    fl.sleep(0)


@fl.workflow(name="w_async_nap")
async def async_nap() -> object:
    await fl.sleep_async(0.05)
    return await fl.wait_for_event_async("go")


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    ran.clear()
    arrived.clear()
    go_on.clear()
    yield
    go_on.set()


def test_a_sleep_is_a_recorded_step_that_lasts_its_duration(ledger: fl.Ledger) -> None:
    assert ledger.run(nap, 0.2) == "after"
    run = ledger.get(ledger.runs(workflow="w_nap").runs[0].id)
    sleep = run.steps[1]
    assert (sleep.name, sleep.status.value, sleep.output) == ("sleep", "completed", None)
    assert sleep.duration is not None and sleep.duration >= timedelta(seconds=0.2)
    assert sleep.input["seconds"] == 0.2 and isinstance(sleep.input["wake_at"], int)


def test_an_event_sent_before_the_wait_is_kept_and_delivered_there(ledger: fl.Ledger) -> None:
    handle = ledger.start(two_waits)
    assert arrived.wait(30)
    first = ledger.send_event(handle.id, "ping", {"n": 1})  # before the wait is reached
    second = ledger.send_event(handle.id, "ping", {"n": 2})
    assert not first.delivered and first.run_id == handle.id
    go_on.set()
    assert handle.result(timeout=30) == [{"n": 1}, {"n": 2}]  # in the order sent
    sent = ledger.sent_events(handle.id)
    assert [(e.id, e.consumed_position) for e in sent] == [(first.id, 2), (second.id, 3)]
    run = ledger.get(handle.id)
    assert [s.output for s in run.steps[1:]] == [{"n": 1}, {"n": 2}]
    assert run.steps[1].name == "wait_for_event:ping"


def test_a_wait_returns_the_payload_as_its_model_and_a_resume_replays_it(
        ledger: fl.Ledger) -> None:
    handle = ledger.start(approval)
    wait_until(lambda: ran == ["asked"], what="the run to reach its wait")
    ledger.send_event(handle.id, "approve", Approval(approved=True, by="ana"))
    assert handle.result(timeout=30) == {"approved": True, "by": "ana", "note": ""}
    fork = ledger.fork(handle.id, 3)  # replays the wait: no second event needed
    assert fork.result(timeout=30) == {"approved": True, "by": "ana", "note": ""}
    assert ran == ["asked", "decided", "decided"]


def test_the_model_may_be_given_positionally(ledger: fl.Ledger) -> None:
    handle = ledger.start(positional)
    ledger.send_event(handle.id, "approve", {"approved": True, "by": "gus"})
    assert handle.result(timeout=30) is True


def test_a_payload_that_does_not_fit_the_model_is_refused_and_not_kept(
        ledger: fl.Ledger) -> None:
    handle = ledger.start(approval)
    wait_until(lambda: bool(ledger.get(handle.id).steps[1:]), what="the wait")
    with pytest.raises(fl.EventRejected, match="approved"):
        ledger.send_event(handle.id, "approve", {"approved": "maybe?", "by": "ana"})
    assert ledger.sent_events(handle.id) == []
    ledger.send_event(handle.id, "approve", {"approved": False, "by": "bo", "note": "no"})
    assert handle.result(timeout=30)["approved"] is False


def test_an_early_event_that_does_not_fit_is_refused_by_the_wait_which_waits_on(
        ledger: fl.Ledger) -> None:
    handle = ledger.submit(approval)  # not started: nobody waits yet, so it is kept
    bad = ledger.send_event(handle.id, "approve", {"approved": "?"})
    good = ledger.send_event(handle.id, "approve", {"approved": True, "by": "cy"})
    with running_worker(ledger.store.backend.url.render_as_string(hide_password=False)):
        assert handle.result(timeout=30)["by"] == "cy"
    refused, delivered = ledger.sent_events(handle.id)
    assert refused.id == bad.id and not refused.delivered
    assert refused.error is not None and "model" in refused.error
    assert delivered.id == good.id and delivered.consumed_position == 2


def test_a_timed_out_wait_raises_wait_timeout_which_the_workflow_may_catch(
        ledger: fl.Ledger) -> None:
    assert ledger.run(patient, 0.1) == "gave up"
    run = ledger.get(ledger.runs(workflow="w_patient").runs[0].id)
    wait = run.steps[0]
    assert wait.status.value == "failed" and wait.error is not None
    assert wait.error.type.endswith("WaitTimeout") and "never" in wait.error.message
    # A fork from the step after the wait replays the timeout instead of waiting again.
    assert ledger.fork(run.id, 2).result(timeout=30) == "gave up"


def test_an_uncaught_timeout_fails_the_run_and_a_resume_waits_afresh(
        ledger: fl.Ledger) -> None:
    # One second: long enough to send the event within the resumed wait's own timeout.
    handle = ledger.start(approval, 1.0)
    with pytest.raises(fl.RunFailed, match="WaitTimeout"):
        handle.result(timeout=30)
    again = ledger.resume(handle.id)  # waits afresh: a new second from now
    wait_until(lambda: ledger.get(handle.id).status is fl.RunStatus.RUNNING
               and ledger.get(handle.id).steps[1].status.value == "running",
               what="the resumed wait")
    ledger.send_event(handle.id, "approve", {"approved": True, "by": "dee"})
    assert again.result(timeout=30)["by"] == "dee"
    assert ledger.get(handle.id).steps[1].attempts == 2


def test_events_to_unknown_finished_or_foreign_runs_are_refused(ledger: fl.Ledger,
                                                                db_url: str) -> None:
    with pytest.raises(fl.RunNotFound):
        ledger.send_event("01234567-89ab-7def-8123-456789abcdef", "approve", {})
    done = ledger.start(nap, 0)
    done.result(timeout=30)
    with pytest.raises(fl.RunNotWaitable, match="finished"):
        ledger.send_event(done.id, "approve", {})
    with pytest.raises(fl.ConfigurationError, match="event name"):
        ledger.send_event(done.id, "", {})
    with pytest.raises(fl.EventRejected, match="not JSON-serializable"):
        ledger.send_event(done.id, "x", object())
    waiting = ledger.submit(approval)
    with fl.Ledger(db_url, owner="someone-else") as other:
        with pytest.raises(fl.RunNotFound):
            other.send_event(waiting.id, "approve", {"approved": True, "by": "x"})
        with pytest.raises(fl.RunNotFound):
            other.sent_events(waiting.id)
    assert ledger.sent_events(waiting.id) == []


def test_sleep_and_wait_belong_to_the_workflow_body(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.RunFailed, match="workflow body, not inside a step"):
        ledger.run(wait_in_step)
    with pytest.raises(fl.NotInRun):
        fl.sleep(1)
    with pytest.raises(fl.RunFailed, match="duration must be a number of seconds"):
        ledger.run(nap, -1)


def test_async_workflows_sleep_and_wait(ledger: fl.Ledger) -> None:
    handle = ledger.start(async_nap)
    wait_until(lambda: len(ledger.get(handle.id).steps) == 2, what="the async wait")
    ledger.send_event(handle.id, "go", "now")
    assert handle.result(timeout=30) == "now"


# -- on a worker: waiting runs hold no slot ---------------------------------------------
def test_a_long_sleep_frees_the_worker_slot_and_wakes_when_due(ledger: fl.Ledger,
                                                                db_url: str) -> None:
    sleeper = ledger.submit(nap, 1.5)
    with running_worker(db_url, concurrency=1, suspend_after=0.2):
        wait_until(lambda: ledger.get(sleeper.id).status is fl.RunStatus.WAITING,
                   what="the sleeper to suspend")
        run = ledger.get(sleeper.id)
        assert run.waiting_for is None and run.wake_at is not None
        assert run.executor is None and run.steps[1].status.value == "waiting"
        assert [r.id for r in ledger.runs(status="waiting")] == [sleeper.id]
        other = ledger.submit(nap, 0)  # the only slot is free: it runs meanwhile
        assert other.result(timeout=30) == "after"
        assert ledger.get(sleeper.id).status is fl.RunStatus.WAITING
        assert sleeper.result(timeout=30) == "after"
    done = ledger.get(sleeper.id)
    assert done.completed_at is not None and done.started_at is not None
    assert done.completed_at - done.started_at >= timedelta(seconds=1.5)
    assert done.completed_at >= run.wake_at
    assert [s.attempts for s in done.steps] == [1, 1, 1]
    assert ran.count("before") == 2 and ran.count("after") == 2  # both runs, once each


def test_a_waiting_run_wakes_when_its_event_is_sent_and_can_be_cancelled(
        ledger: fl.Ledger, db_url: str) -> None:
    handle = ledger.submit(approval)
    cancelled = ledger.submit(approval)
    with running_worker(db_url, concurrency=1, suspend_after=0.2):
        wait_until(lambda: {ledger.get(handle.id).status, ledger.get(cancelled.id).status}
                   == {fl.RunStatus.WAITING}, what="both runs to wait")
        run = ledger.get(handle.id)
        assert run.waiting_for == "approve" and run.wake_at is None
        with pytest.raises(fl.RunWaiting, match="waiting for event 'approve'"):
            ledger.resume(handle.id)  # it continues by itself
        assert run.steps[1].input["schema"]["required"] == ["approved", "by"]
        assert ledger.cancel(cancelled.id)
        ledger.send_event(handle.id, "approve", {"approved": True, "by": "eve"})
        assert handle.result(timeout=30)["by"] == "eve"
    gone = ledger.get(cancelled.id)
    assert gone.status is fl.RunStatus.CANCELLED
    assert gone.steps[1].status.value == "failed" and gone.counts.failed == 1
    with pytest.raises(fl.RunNotWaitable):
        ledger.send_event(cancelled.id, "approve", {"approved": True, "by": "eve"})


def test_a_waiting_run_can_be_paused_and_resumed(ledger: fl.Ledger, db_url: str) -> None:
    handle = ledger.submit(approval, 60)
    with running_worker(db_url, suspend_after=0.2):
        wait_until(lambda: ledger.get(handle.id).status is fl.RunStatus.WAITING,
                   what="the wait")
        assert ledger.pause(handle.id, reason="holiday")
        ledger.send_event(handle.id, "approve", {"approved": True, "by": "fay"})
        assert ledger.get(handle.id).status is fl.RunStatus.PAUSED  # no wake while paused
        ledger.resume(handle.id)
        assert handle.result(timeout=30)["by"] == "fay"
    assert ran == ["asked", "decided"]


def test_a_suspended_wait_times_out_on_time(ledger: fl.Ledger, db_url: str) -> None:
    handle = ledger.submit(patient, 0.8)
    with running_worker(db_url, suspend_after=0.2):
        wait_until(lambda: ledger.get(handle.id).status is fl.RunStatus.WAITING,
                   what="the wait")
        wake_at = ledger.get(handle.id).wake_at
        assert handle.result(timeout=30) == "gave up"
    run = ledger.get(handle.id)
    wait = run.steps[0]
    assert wake_at is not None and wait.completed_at is not None
    assert wait.completed_at >= wake_at
    assert json.loads(json.dumps(wait.input))["until"] is not None
