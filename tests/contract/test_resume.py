"""Resume, fork, cancel and non-determinism detection."""

from __future__ import annotations

import sys
import threading

import pytest

import flowledger as fl
from tests.helpers.gate import Gate

executed: list[str] = []
switches = {"fail_b": True}


@fl.step()
def step_a(x: int) -> int:
    executed.append("a")
    return x + 1


@fl.step()
def step_b(x: int) -> int:
    executed.append("b")
    if switches["fail_b"]:
        raise RuntimeError("b is broken")
    return x * 2


@fl.step()
def step_c(x: int) -> int:
    executed.append("c")
    return x - 3


@fl.workflow(name="res_abc")
def abc(x: int) -> int:
    return step_c(step_b(step_a(x)))


_original_abc = abc.__wrapped__  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _reset() -> None:
    executed.clear()
    switches["fail_b"] = True


def test_resume_reuses_completed_steps_and_retries_the_failed_one(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(abc, 4)
    run_id = info.value.run_id
    assert executed == ["a", "b"]

    switches["fail_b"] = False
    executed.clear()
    assert ledger.resume(run_id).result(timeout=30) == 7
    assert executed == ["b", "c"]  # a's output was replayed, not recomputed

    run = ledger.get(run_id)
    assert run.status is fl.RunStatus.COMPLETED and run.error is None
    assert run.recovery_attempts == 1
    assert run.resumed_from_position == 2 and run.resumed_at is not None
    assert [(s.name, s.attempts, s.status) for s in run.steps] == [
        ("step_a", 1, fl.StepStatus.COMPLETED),
        ("step_b", 2, fl.StepStatus.COMPLETED),
        ("step_c", 1, fl.StepStatus.COMPLETED),
    ]
    assert run.counts == fl.StepCounts(total=3, completed=3, failed=0, skipped=0)


def test_resuming_a_completed_run_returns_its_output_without_running(ledger: fl.Ledger) -> None:
    switches["fail_b"] = False
    handle = ledger.start(abc, 1)
    assert handle.result(timeout=30) == 1
    executed.clear()
    assert ledger.resume(handle.id).result(timeout=30) == 1
    assert executed == []
    assert ledger.get(handle.id).recovery_attempts == 0


def test_resume_refuses_a_run_held_by_a_live_process(ledger: fl.Ledger) -> None:
    gate = Gate()

    @fl.step()
    def hold() -> str:
        gate.wait()
        return "held"

    @fl.workflow(name="res_hold")
    def holding() -> str:
        return hold()

    handle = ledger.start(holding)
    assert gate.arrived.wait(30)
    with pytest.raises(fl.RunAlreadyRunning, match=handle.id):
        ledger.resume(handle.id)
    gate.open()
    assert handle.result(timeout=30) == "held"


def test_fork_reuses_steps_before_position_and_records_lineage(ledger: fl.Ledger) -> None:
    switches["fail_b"] = False
    source = ledger.start(abc, 4)
    assert source.result(timeout=30) == 7
    executed.clear()

    fork = ledger.fork(source.id, from_position=2)
    assert fork.result(timeout=30) == 7
    assert executed == ["b", "c"]
    forked = ledger.get(fork.id)
    assert forked.id != source.id
    assert (forked.forked_from, forked.forked_from_position) == (source.id, 2)
    assert [s.name for s in forked.steps] == ["step_a", "step_b", "step_c"]
    assert forked.steps[0].output == 5

    executed.clear()
    changed = ledger.fork(source.id, from_position=1, inputs={"x": 10})
    assert changed.result(timeout=30) == 19
    assert executed == ["a", "b", "c"]
    assert ledger.get(changed.id).inputs == {"x": 10}

    with pytest.raises(fl.ConfigurationError, match="between 1 and 4"):
        ledger.fork(source.id, from_position=9)


def test_changed_step_order_raises_non_determinism(ledger: fl.Ledger,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(abc, 4)
    run_id = info.value.run_id

    def abc_changed(x: int) -> int:  # the "new code": same name and version, other order
        return step_b(step_c(step_a(x)))

    abc_changed.__qualname__ = "abc"  # edited in place: the same entrypoint
    monkeypatch.setattr(sys.modules[__name__], "abc", fl.workflow(name="res_abc")(abc_changed))
    try:
        with pytest.raises(fl.RunFailed) as resumed:
            ledger.resume(run_id).result(timeout=30)
        cause = resumed.value.__cause__
        assert isinstance(cause, fl.NonDeterminismError)
        assert "position 2" in str(cause)
        assert "'step_b'" in str(cause) and "'step_c'" in str(cause)
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.FAILED
        assert run.error is not None and run.error.type.endswith("NonDeterminismError")
        assert [s.name for s in run.steps] == ["step_a", "step_b"]  # records untouched
    finally:
        fl.workflow(name="res_abc")(_original_abc)


def test_version_change_is_refused_on_resume(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(abc, 4)

    fl.workflow(name="res_abc", version="2")(abc.__wrapped__)  # type: ignore[attr-defined]
    try:
        with pytest.raises(fl.WorkflowVersionMismatch, match="version '1'"):
            ledger.resume(info.value.run_id)
    finally:
        fl.workflow(name="res_abc")(abc.__wrapped__)  # type: ignore[attr-defined]


def test_cancel_stops_the_run_before_its_next_step(ledger: fl.Ledger) -> None:
    gate = Gate()

    @fl.step()
    def first() -> str:
        gate.wait()
        return "first"

    @fl.step()
    def second() -> str:
        executed.append("second")
        return "second"

    @fl.workflow(name="res_cancel")
    def cancellable() -> str:
        first()
        return second()

    handle = ledger.start(cancellable)
    assert gate.arrived.wait(30)
    assert ledger.cancel(handle.id) is True
    assert ledger.get(handle.id).status is fl.RunStatus.CANCELLED
    gate.open()
    with pytest.raises(fl.RunCancelled) as info:
        handle.result(timeout=30)
    assert info.value.run_id == handle.id
    run = ledger.get(handle.id)
    assert run.status is fl.RunStatus.CANCELLED
    assert [(s.name, s.status) for s in run.steps] == [("first", fl.StepStatus.COMPLETED)]
    assert executed == []
    assert run.counts.total == 1 and run.counts.completed == 1
    assert ledger.cancel(handle.id) is False  # already finished


def test_cancelled_run_can_be_resumed(ledger: fl.Ledger) -> None:
    gate = Gate()

    @fl.step()
    def wait_here() -> int:
        gate.wait()
        return 1

    @fl.step()
    def then() -> int:
        return 2

    @fl.workflow(name="res_cancel_resume")
    def wf() -> int:
        return wait_here() + then()

    handle = ledger.start(wf)
    assert gate.arrived.wait(30)
    ledger.cancel(handle.id)
    gate.open()
    with pytest.raises(fl.RunCancelled):
        handle.result(timeout=30)
    assert ledger.resume(handle.id).result(timeout=30) == 3
    assert ledger.get(handle.id).status is fl.RunStatus.COMPLETED
    assert handle.result(timeout=30) == 3  # the first handle answers what the record says


def test_close_waits_for_runs_started_on_threads(db_url: str) -> None:
    gate = Gate()

    @fl.step()
    def slow_step() -> str:
        gate.wait()
        return "finished"

    @fl.workflow(name="res_close_waits")
    def wf() -> str:
        return slow_step()


    ledger = fl.Ledger(db_url)
    handle = ledger.start(wf)
    assert gate.arrived.wait(30)
    closer = threading.Thread(target=ledger.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close() returned while a started run was still executing"
    gate.open()
    closer.join(30)
    assert not closer.is_alive() and handle.done()
    with fl.Ledger(db_url) as other:
        assert other.get(handle.id).status is fl.RunStatus.COMPLETED


def test_cancelling_a_parent_during_its_child_raises_run_cancelled(ledger: fl.Ledger) -> None:
    gate = Gate()

    @fl.step()
    def inside_child() -> int:
        gate.wait()
        return 1

    @fl.step()
    def after_inside() -> int:
        return 2

    @fl.workflow(name="res_cancel_child")
    def child() -> int:
        return inside_child() + after_inside()

    @fl.workflow(name="res_cancel_parent")
    def parent() -> int:
        return child() * 10

    handle = ledger.start(parent)
    assert gate.arrived.wait(30)
    assert ledger.cancel(handle.id) is True
    kid = ledger.runs(parent=handle.id).runs[0]
    assert kid.status is fl.RunStatus.CANCELLED  # cancellation reaches child runs
    gate.open()
    with pytest.raises(fl.RunCancelled):
        handle.result(timeout=30)
    assert ledger.get(handle.id).status is fl.RunStatus.CANCELLED
    assert [s.name for s in ledger.get(kid.id).steps] == ["inside_child"]


def test_fork_keeps_var_positional_and_var_keyword_inputs(ledger: fl.Ledger) -> None:
    @fl.step()
    def combine(base: int, extra: list[int], options: dict[str, int]) -> int:
        return base * sum(extra) + sum(options.values())

    @fl.workflow(name="res_varargs")
    def varargs(base: int, *extra: int, scale: int = 1, **options: int) -> int:
        return combine(base, list(extra), options) * scale

    source = ledger.start(varargs, 2, 3, 4, scale=2, bonus=5)
    assert source.result(timeout=30) == (2 * 7 + 5) * 2
    assert ledger.get(source.id).inputs == {"base": 2, "extra": [3, 4], "scale": 2,
                                            "options": {"bonus": 5}}
    assert ledger.fork(source.id, from_position=1).result(timeout=30) == 38
    assert ledger.fork(source.id, 1, inputs={"scale": 3}).result(timeout=30) == 57
    with pytest.raises(fl.ConfigurationError, match="no parameter"):
        ledger.fork(source.id, 1, inputs={"nope": 1})
