"""Retries, backoff, non-retryable errors, timeouts and deadlines."""

from __future__ import annotations

import asyncio
import threading

import pytest

import flowledger as fl
from tests.helpers.gate import Gate


class Transient(Exception):
    pass


def test_retries_until_success_and_counts_attempts(ledger: fl.Ledger) -> None:
    failures = {"left": 2}

    @fl.step(retries=3, backoff=0.001)
    def flaky() -> str:
        if failures["left"]:
            failures["left"] -= 1
            raise Transient(f"left {failures['left']}")
        return "done"

    @fl.workflow(name="retry_ok")
    def wf() -> str:
        return flaky()

    assert ledger.run(wf) == "done"
    step = ledger.get(ledger.runs(workflow="retry_ok").runs[0].id).steps[0]
    assert step.status is fl.StepStatus.COMPLETED
    assert step.attempts == 3


def test_exhausted_retries_fail_the_step_and_the_run(ledger: fl.Ledger) -> None:
    @fl.step(retries=2, backoff=0.001)
    def always() -> None:
        raise Transient("still broken")

    @fl.workflow(name="retry_exhaust")
    def wf() -> None:
        always()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert isinstance(info.value.__cause__, Transient)
    run = ledger.get(info.value.run_id)
    assert run.status is fl.RunStatus.FAILED
    assert run.error is not None and run.error.type.endswith("Transient")
    assert "still broken" in run.error.message and "Traceback" in run.error.traceback
    assert run.steps[0].attempts == 3 and run.steps[0].status is fl.StepStatus.FAILED
    assert run.counts == fl.StepCounts(total=1, completed=0, failed=1, skipped=0)


@pytest.mark.parametrize("error", [KeyError("k"), fl.NonRetryable("stop")])
def test_non_retryable_errors_fail_at_once(ledger: fl.Ledger, error: Exception) -> None:
    @fl.step(retries=5, backoff=0.001, non_retryable=(KeyError,))
    def picky() -> None:
        raise error

    @fl.workflow(name=f"retry_never_{type(error).__name__}")
    def wf() -> None:
        picky()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert ledger.get(info.value.run_id).steps[0].attempts == 1


def test_workflow_may_catch_a_step_failure_and_go_on(ledger: fl.Ledger) -> None:
    @fl.step()
    def broken() -> None:
        raise ValueError("no")

    @fl.step()
    def fallback() -> str:
        return "plan b"

    @fl.workflow(name="retry_catch")
    def wf() -> str:
        try:
            broken()
        except ValueError:
            return fallback()
        return "unreachable"

    assert ledger.run(wf) == "plan b"
    run = ledger.get(ledger.runs(workflow="retry_catch").runs[0].id)
    assert run.status is fl.RunStatus.COMPLETED
    assert [s.status for s in run.steps] == [fl.StepStatus.FAILED, fl.StepStatus.COMPLETED]


def test_sync_step_timeout_is_recorded_and_retried(ledger: fl.Ledger) -> None:
    never = threading.Event()

    @fl.step(timeout=0.2, retries=1, backoff=0.001)
    def hangs() -> None:
        never.wait(30)

    @fl.workflow(name="retry_timeout_sync")
    def wf() -> None:
        hangs()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert isinstance(info.value.__cause__, fl.StepTimeout)
    step = ledger.get(info.value.run_id).steps[0]
    assert step.attempts == 2 and step.error is not None
    assert step.error.type == "flowledger.errors.StepTimeout"


def test_async_step_timeout(ledger: fl.Ledger) -> None:
    @fl.step(timeout=0.2)
    async def hangs() -> None:
        await asyncio.Event().wait()

    @fl.workflow(name="retry_timeout_async")
    async def wf() -> None:
        await hangs()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert isinstance(info.value.__cause__, fl.StepTimeout)


def test_workflow_deadline_fails_the_run(ledger: fl.Ledger) -> None:
    gate = Gate()

    @fl.step()
    def slow() -> str:
        gate.wait(30)
        return "late"

    @fl.step()
    def after() -> str:
        return "never"

    @fl.workflow(name="retry_deadline", deadline=0.3)
    def wf() -> str:
        slow()
        return after()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    gate.open()
    run = ledger.get(info.value.run_id)
    assert run.status is fl.RunStatus.FAILED
    assert run.error is not None
    assert run.error.type in ("flowledger.errors.StepTimeout", "flowledger.errors.DeadlineExceeded")
    assert run.deadline_at is not None
    assert [s.name for s in run.steps] == ["slow"]


def test_deadline_checked_before_each_step(ledger: fl.Ledger) -> None:
    @fl.step()
    def quick() -> int:
        return 1

    @fl.workflow(name="retry_deadline_between")
    def wf() -> int:
        quick()
        threading.Event().wait(0.3)  # the workflow body itself overruns its deadline
        return quick()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf, deadline=0.1)
    assert isinstance(info.value.__cause__, fl.DeadlineExceeded)
    assert len(ledger.get(info.value.run_id).steps) == 1
