"""Children that don't block: fl.start_child, ChildHandle.result, fl.gather."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid

import pytest

import flowledger as fl
from flowledger import ids
from flowledger.store import NewRun
from tests.helpers import crashy
from tests.helpers.gate import Gate


def _children(ledger: fl.Ledger, parent_id: str) -> list[fl.Run]:
    return [run for run in ledger.runs(limit=100).runs
            if run.parent_id is not None and str(run.parent_id) == parent_id]


def test_children_run_concurrently_and_gather_returns_outputs_in_order(
        ledger: fl.Ledger) -> None:
    started = [threading.Event() for _ in range(3)]

    @fl.step()
    def work(i: int) -> int:
        started[i].set()
        for other in started:  # every child's step is in flight before any ends
            assert other.wait(30), "the children did not run concurrently"
        return i * 10

    @fl.workflow(name="kid")
    def kid(i: int) -> int:
        return work(i) + 1

    @fl.workflow(name="fan_parent")
    def parent(n: int) -> list[int]:
        handles = [fl.start_child(kid, i) for i in range(n)]
        return fl.gather(*handles)

    handle = ledger.start(parent, 3)
    assert handle.result(timeout=60) == [1, 11, 21]
    run = ledger.get(handle.id)
    names = [step.name for step in run.steps]
    assert names == ["start_child:kid"] * 3 + ["child_result:kid"] * 3
    kids = _children(ledger, handle.id)
    assert len(kids) == 3
    assert {str(step.child_run_id) for step in run.steps[:3]} == {str(k.id) for k in kids}
    intervals = []
    for child in kids:
        step = ledger.get(child.id).steps[0]
        assert step.started_at is not None and step.completed_at is not None
        intervals.append((step.started_at, step.completed_at))
    # Overlap: every step started before any of them ended.
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)


def test_a_failed_child_raises_its_run_failed_in_gather(ledger: fl.Ledger) -> None:
    @fl.workflow(name="bad_kid")
    def bad_kid(i: int) -> int:
        if i == 1:
            raise ValueError(f"kid {i} broke")
        return i

    seen: dict[str, str] = {}

    @fl.workflow(name="catching_parent")
    def parent() -> str:
        handles = [fl.start_child(bad_kid, i) for i in range(2)]
        try:
            fl.gather(*handles)
        except fl.RunFailed as exc:
            seen["child"] = exc.run_id
            return f"{exc.error_type}: {exc.error_message}"
        return "no failure"

    handle = ledger.start(parent)
    assert handle.result(timeout=60) == "builtins.ValueError: kid 1 broke"
    run = ledger.get(handle.id)
    assert run.steps[-1].name == "child_result:bad_kid"
    assert run.steps[-1].status is fl.StepStatus.FAILED
    assert seen["child"] == str(run.steps[1].child_run_id)


def test_resuming_the_parent_resumes_a_failed_child_once(ledger: fl.Ledger) -> None:
    calls = {"n": 0}

    @fl.step()
    def shaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("first time")
        return "ok"

    @fl.workflow(name="shaky_kid")
    def kid() -> str:
        return shaky()

    @fl.workflow(name="shaky_parent")
    def parent() -> str:
        output: str = fl.start_child(kid).result()
        return output

    handle = ledger.start(parent)
    with pytest.raises(fl.RunFailed):
        handle.result(timeout=60)
    assert ledger.resume(handle.id).result(timeout=60) == "ok"
    assert calls["n"] == 2
    assert len(_children(ledger, handle.id)) == 1


def test_handle_waits_while_other_steps_run(ledger: fl.Ledger) -> None:
    gate = Gate()

    @fl.step()
    def slow() -> str:
        gate.wait()
        return "slow"

    @fl.workflow(name="slow_kid")
    def kid() -> str:
        return slow()

    @fl.step()
    def meanwhile() -> str:
        assert gate.arrived.wait(30)  # the child is in flight while this step runs
        gate.open()
        return "meanwhile"

    @fl.workflow(name="busy_parent")
    def parent() -> list[str]:
        handle = fl.start_child(kid)
        other = meanwhile()
        return [other, handle.result()]

    assert ledger.run(parent) == ["meanwhile", "slow"]


def test_async_result_and_gather(ledger: fl.Ledger) -> None:
    @fl.workflow(name="async_kid")
    async def kid(i: int) -> int:
        await asyncio.sleep(0)
        return i + 100

    @fl.workflow(name="async_parent")
    async def parent() -> list[int]:
        first = fl.start_child(kid, 1)
        second = fl.start_child(kid, 2)
        return [await first.result_async(), *await fl.gather_async(second)]

    assert ledger.run(parent) == [101, 102]


def test_bad_input_is_refused_clearly(ledger: fl.Ledger) -> None:
    @fl.workflow(name="lonely_kid")
    def kid() -> int:
        return 1

    with pytest.raises(fl.NotInRun, match="start_child"):
        fl.start_child(kid)

    @fl.workflow(name="bad_gather")
    def bad_gather() -> list[int]:
        return fl.gather(fl.start_child(kid), 3)  # type: ignore[arg-type]

    with pytest.raises(fl.RunFailed, match=r"takes handles returned by fl\.start_child"):
        ledger.run(bad_gather)

    @fl.workflow(name="not_a_workflow")
    def not_a_workflow() -> None:
        fl.start_child(print)

    with pytest.raises(fl.RunFailed, match="not a @workflow"):
        ledger.run(not_a_workflow)

    @fl.step()
    def inside() -> None:
        fl.start_child(kid)

    @fl.workflow(name="start_in_step")
    def start_in_step() -> None:
        inside()

    with pytest.raises(fl.RunFailed, match="workflow body, not inside a step"):
        ledger.run(start_in_step)

    @fl.workflow(name="args_kid")
    def args_kid(n: int) -> int:
        return n

    @fl.workflow(name="bad_args")
    def bad_args() -> None:
        fl.start_child(args_kid, 1, 2)

    with pytest.raises(fl.RunFailed, match="bad arguments for workflow 'args_kid'"):
        ledger.run(bad_args)


def test_queued_child_runs_on_a_worker(ledger: fl.Ledger) -> None:
    @fl.workflow(name="queued_kid")
    def kid(i: int) -> int:
        return i * 2

    @fl.workflow(name="queue_parent")
    def parent() -> int:
        output: int = fl.start_child(kid, 21, queue="kids").result()
        return output

    handle = ledger.start(parent)
    assert not handle.wait(timeout=1)  # no worker serves "kids" yet: the child waits
    assert _children(ledger, handle.id)[0].status is fl.RunStatus.PENDING
    worker = fl.Worker(ledger=ledger, queues=["kids"], concurrency=1)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        assert handle.result(timeout=60) == 42
    finally:
        worker.stop()
        thread.join(30)
    child = _children(ledger, handle.id)[0]
    assert child.queue == "kids"
    assert child.status is fl.RunStatus.COMPLETED


def test_a_handle_belongs_to_the_run_that_started_it(ledger: fl.Ledger) -> None:
    @fl.workflow(name="owned_kid")
    def kid() -> int:
        return 7

    kept: list[fl.ChildHandle] = []

    @fl.workflow(name="first_owner")
    def first() -> int:
        handle = fl.start_child(kid)
        kept.append(handle)
        output: int = handle.result()
        return output

    @fl.workflow(name="second_owner")
    def second() -> int:
        output: int = kept[0].result()
        return output

    assert ledger.run(first) == 7
    with pytest.raises(fl.RunFailed, match="only that run's workflow body can wait"):
        ledger.run(second)
    with pytest.raises(fl.NotInRun):
        kept[0].result()


def test_cancelling_the_parent_cancels_a_waiting_parent_and_its_child(
        ledger: fl.Ledger) -> None:
    gate = Gate()

    @fl.step()
    def held() -> str:
        gate.wait()
        return "held"

    @fl.step()
    def after() -> str:
        return "after"

    @fl.workflow(name="held_kid")
    def kid() -> str:
        return held() + after()

    @fl.workflow(name="cancelled_parent")
    def parent() -> str:
        output: str = fl.start_child(kid).result()
        return output

    handle = ledger.start(parent)
    assert gate.arrived.wait(30)
    assert ledger.cancel(handle.id)
    gate.open()
    with pytest.raises(fl.RunCancelled):
        handle.result(timeout=60)
    child = _children(ledger, handle.id)[0]
    assert ledger.handle(child.id).wait(timeout=60)
    assert ledger.get(child.id).status is fl.RunStatus.CANCELLED
    # Resuming the parent resumes its cancelled child once, and waits for it again.
    assert ledger.resume(handle.id).result(timeout=60) == "heldafter"
    assert ledger.get(child.id).status is fl.RunStatus.COMPLETED
    assert len(_children(ledger, handle.id)) == 1


def test_recover_takes_up_an_orphaned_child_whose_parent_has_ended(ledger: fl.Ledger) -> None:
    done = ledger.start(crashy.chain, 1)
    assert done.result(timeout=30) == 1

    def orphan(parent_id: str | None, entrypoint: str = "tests.helpers.crashy:chain") -> str:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        run = NewRun(id=ids.new_run_id(), workflow="crash_chain", version="1",
                     entrypoint=entrypoint, owner="default",
                     status="running", serializer="json", inputs='{"n": 3}',
                     created_at=ids.now_us(), executor=f"{ids.hostname()}:{gone.pid}:0",
                     lease_token=ids.new_token(),
                     parent_id=None if parent_id is None else uuid.UUID(parent_id))
        ledger.store.create_run(run)
        return str(run.id)

    child_of_ended = orphan(done.id)
    running_parent = orphan(None, "no_such_module:wf")  # left running, cannot be loaded
    child_of_running = orphan(running_parent)
    handles = ledger.recover(on_error=lambda run_id, error: None)
    assert [h.id for h in handles] == [child_of_ended]
    assert handles[0].result(timeout=30) == 1 + 4 + 9
    assert ledger.get(child_of_running).status is fl.RunStatus.RUNNING  # its parent's to resume
