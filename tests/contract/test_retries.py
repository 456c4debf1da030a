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


class Refused(Exception):
    pass


def test_retry_if_refusal_fails_at_once_and_acceptance_retries(ledger: fl.Ledger) -> None:
    seen: list[str] = []

    def only_transient(exc: BaseException) -> bool:
        seen.append(type(exc).__name__)
        return not isinstance(exc, Refused)

    errors = [Transient("a"), Transient("b")]

    @fl.step(retries=5, backoff=0.001, retry_if=only_transient)
    def picky(kind: str) -> str:
        if kind == "refused":
            raise Refused("no point retrying")
        if errors:
            raise errors.pop(0)
        return "ok"

    @fl.workflow(name="retry_if_refused")
    def refused() -> str:
        return picky("refused")

    @fl.workflow(name="retry_if_accepted")
    def accepted() -> str:
        return picky("fine")

    with pytest.raises(fl.RunFailed, match="no point retrying"):
        ledger.run(refused)
    step = ledger.get(ledger.runs(workflow="retry_if_refused").runs[0].id).steps[0]
    assert step.status is fl.StepStatus.FAILED
    assert step.attempts == 1
    assert seen == ["Refused"]

    assert ledger.run(accepted) == "ok"
    step = ledger.get(ledger.runs(workflow="retry_if_accepted").runs[0].id).steps[0]
    assert step.attempts == 3
    assert seen == ["Refused", "Transient", "Transient"]


def test_retry_if_combines_with_non_retryable_and_a_broken_predicate(
        ledger: fl.Ledger) -> None:
    asked: list[str] = []

    def ask(exc: BaseException) -> bool:
        asked.append(str(exc))
        if str(exc) == "explode":
            raise RuntimeError("predicate broke")
        return True

    @fl.step(retries=3, backoff=0.001, non_retryable=(KeyError,), retry_if=ask)
    def failing(what: str) -> None:
        if what == "key":
            raise KeyError("key")
        raise Transient(what)

    @fl.workflow(name="retry_if_mix")
    def wf(what: str) -> None:
        failing(what)

    for what in ("key", "explode"):
        with pytest.raises(fl.RunFailed):
            ledger.run(wf, what)
    attempts = [r.steps[0].attempts for r in
                (ledger.get(run.id) for run in ledger.runs(workflow="retry_if_mix").runs)]
    assert sorted(attempts) == [1, 1]
    assert asked == ["explode"]  # non_retryable decides first: the predicate is not asked
    with pytest.raises(fl.ConfigurationError, match="retry_if must be a callable"):
        fl.step(retry_if=3)  # type: ignore[call-overload]


def test_max_backoff_caps_the_recorded_wait(ledger: fl.Ledger) -> None:
    failures = {"left": 2}

    @fl.step(retries=2, backoff=3600, max_backoff=0.05, jitter=0)
    def capped() -> str:
        if failures["left"]:
            failures["left"] -= 1
            raise Transient("again")
        return "done"

    @fl.workflow(name="max_backoff_cap")
    def wf() -> str:
        return capped()

    assert ledger.run(wf) == "done"  # an hour's backoff would hang here
    step = ledger.get(ledger.runs(workflow="max_backoff_cap").runs[0].id).steps[0]
    failed = [a for a in step.attempt_history if a.retry_at is not None]
    assert len(failed) == 2
    for attempt in failed:
        assert attempt.completed_at is not None and attempt.retry_at is not None
        waited = (attempt.retry_at - attempt.completed_at).total_seconds()
        assert 0.04 <= waited <= 0.06, waited
