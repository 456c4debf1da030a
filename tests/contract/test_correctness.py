"""Regressions of wrong results found by trying flowledger as a new user would: child runs,
non-determinism, replayable values, timeouts, stale handles, inputs."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

import flowledger as fl
from flowledger import ids
from flowledger.store.schema import runs, steps
from tests.helpers.gate import Gate

DEAD_EXECUTOR = f"{ids.hostname()}:999999999:0"  # no such process on this host


def as_if_killed(ledger: fl.Ledger, run_id: str, position: int) -> None:
    """Leave the records a SIGKILL leaves while step ``position`` runs: the step and the
    run marked running by a process that no longer exists."""
    rid = uuid.UUID(run_id)
    with ledger.store.backend.engine.begin() as conn:
        conn.execute(update(steps).where(steps.c.run_id == rid, steps.c.position == position)
                     .values(status="running", completed_at=None, output=None))
        conn.execute(update(runs).where(runs.c.id == rid).values(
            status="running", completed_at=None, output=None, executor=DEAD_EXECUTOR))


@fl.step()
def double(x: int) -> int:
    return x * 2


@fl.workflow(name="cor_child")
def child_flow(x: int) -> int:
    return double(x) + 1


@fl.workflow(name="cor_parent")
def parent_flow(x: int) -> int:
    return child_flow(x) * 10


def test_a_completed_child_run_is_never_run_or_modified_again(ledger: fl.Ledger) -> None:
    parent = ledger.start(parent_flow, 4)
    assert parent.result(timeout=30) == 90
    child_id = ledger.get(parent.id).steps[0].child_run_id
    assert child_id is not None
    before = ledger.get(child_id)
    # the parent died after its child completed, before recording the child's step
    as_if_killed(ledger, parent.id, 1)
    assert ledger.resume(parent.id).result(timeout=30) == 90
    after = ledger.get(child_id)
    assert after == before  # resumed counter, times, steps: all as they were
    resumed = ledger.get(parent.id)
    assert resumed.status is fl.RunStatus.COMPLETED
    assert resumed.steps[0].status is fl.StepStatus.COMPLETED and resumed.steps[0].output == 9


@fl.step()
def first_step() -> int:
    return 1


@fl.step()
def second_step() -> int:
    return 2


@fl.step()
def other_step() -> int:
    return 3


@fl.workflow(name="cor_nondeterministic")
def nondeterministic() -> int:
    return first_step() + second_step()


def test_a_non_determinism_error_changes_no_recorded_step(ledger: fl.Ledger,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The step in flight when the process died stays as recorded (no failure and no
    duration running up to the resume)."""
    source = ledger.start(nondeterministic)
    assert source.result(timeout=30) == 3
    as_if_killed(ledger, source.id, 2)
    crashed = ledger.get(source.id).steps[1]

    def changed() -> int:  # the code now calls another step at position 2
        return first_step() + other_step()

    changed.__qualname__ = "nondeterministic"
    original = nondeterministic.__wrapped__  # type: ignore[attr-defined]
    monkeypatch.setitem(globals(), "nondeterministic",
                        fl.workflow(name="cor_nondeterministic")(changed))
    try:
        with pytest.raises(fl.RunFailed) as info:
            ledger.resume(source.id).result(timeout=30)
    finally:
        fl.workflow(name="cor_nondeterministic")(original)  # the registry, as it was
    assert isinstance(info.value.__cause__, fl.NonDeterminismError)
    run = ledger.get(source.id)
    assert run.status is fl.RunStatus.FAILED
    step = run.steps[1]
    assert (step.status, step.error, step.completed_at, step.duration, step.attempts) == (
        fl.StepStatus.RUNNING, None, None, None, 1)
    assert (step.name, step.started_at) == (crashed.name, crashed.started_at)


def counting_up() -> Iterator[int]:
    yield from range(3)


@fl.step()
def make_generator() -> object:
    return counting_up()


@fl.step()
def make_nested_generator() -> object:
    return {"values": [1, counting_up()]}


@fl.workflow(name="cor_generator")
def generator_flow(nested: bool) -> object:
    return make_nested_generator() if nested else make_generator()


@pytest.mark.parametrize("nested", [False, True])
def test_a_generator_output_is_refused_not_consumed(ledger: fl.Ledger, nested: bool) -> None:
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(generator_flow, nested)
    cause = info.value.__cause__
    assert isinstance(cause, fl.SerializationError)
    assert "generator" in str(cause) and "replay" in str(cause)
    step = ledger.get(info.value.run_id).steps[0]
    assert step.status is fl.StepStatus.FAILED and step.output is None


def test_an_async_step_that_swallows_its_timeout_still_times_out(ledger: fl.Ledger) -> None:
    @fl.step(timeout=0.05)
    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "swallowed"  # a step must not outlive its timeout by eating the cancel
        return "slept"

    @fl.workflow(name="cor_stubborn")
    async def wf() -> str:
        return await stubborn()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert isinstance(info.value.__cause__, fl.StepTimeout)
    step = ledger.get(info.value.run_id).steps[0]
    assert step.status is fl.StepStatus.FAILED and step.output is None
    assert step.error is not None and step.error.type == "flowledger.errors.StepTimeout"


def test_a_stale_handle_answers_what_the_record_says(ledger: fl.Ledger) -> None:
    """Cancelled here, then resumed: the first handle reports the resumed outcome, and
    nothing internal (LeaseLost) escapes it."""
    gate = Gate()
    calls = {"n": 0}

    @fl.step()
    def held() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            gate.wait()  # the first execution's attempt, in flight during cancel + resume
        return calls["n"]

    @fl.workflow(name="cor_stale")
    def wf() -> int:
        return held() * 100

    first = ledger.start(wf)
    assert gate.arrived.wait(30)
    assert ledger.cancel(first.id) is True
    second = ledger.resume(first.id)  # takes the run over while the first attempt runs
    assert second.result(timeout=30) == 200
    gate.open()  # the first execution's late result is fenced out
    assert first.result(timeout=30) == 200
    assert ledger.get(first.id).status is fl.RunStatus.COMPLETED


@fl.workflow(name="cor_typed")
def typed(count: int, names: list[str], *extra: int, **options: float) -> int:
    return count + len(names) + sum(extra) + int(sum(options.values()))


@pytest.mark.parametrize(("args", "kwargs", "problem"), [
    (("three", ["a"]), {}, "input count='three' does not fit its annotation int"),
    ((1, ["a", 2]), {}, "input names[1]=2 does not fit"),
    ((1, ["a"], "x"), {}, "input extra[0]='x' does not fit"),
    ((1, ["a"]), {"weight": "heavy"}, "input options['weight']='heavy' does not fit"),
])
def test_inputs_of_the_wrong_type_are_refused_before_anything_is_recorded(
        ledger: fl.Ledger, args: tuple[Any, ...], kwargs: dict[str, Any],
        problem: str) -> None:
    for start in (ledger.run, ledger.start, ledger.submit):
        with pytest.raises(fl.ConfigurationError, match=problem.replace("[", r"\[")):
            start(typed, *args, **kwargs)
    assert ledger.runs().runs == ()


def test_inputs_given_as_a_mapping_are_converted_and_arguments_kept(ledger: fl.Ledger) -> None:
    assert ledger.run(typed, inputs={"count": "2", "names": ["a"]}) == 3
    assert ledger.get(ledger.runs().runs[0].id).inputs["count"] == 2
    run = ledger.start(typed, 2, ("a", "b"))  # a tuple fits list[str]: kept as given
    assert run.result(timeout=30) == 4


def test_a_run_whose_process_died_says_so_and_what_to_do(ledger: fl.Ledger) -> None:
    done = ledger.start(nondeterministic)
    assert done.result(timeout=30) == 3
    assert ledger.get(done.id).stalled is None
    as_if_killed(ledger, done.id, 2)
    for run in (ledger.get(done.id), ledger.runs().runs[0]):
        assert run.status is fl.RunStatus.RUNNING and run.executor == DEAD_EXECUTOR
        assert run.stalled is not None
        assert "pid 999999999" in run.stalled and "is gone" in run.stalled
        assert f"flowledger resume {done.id}" in run.stalled
    assert ledger.resume(done.id).result(timeout=30) == 3
    assert ledger.get(done.id).stalled is None


def test_loose_option_values_get_clear_answers(ledger: fl.Ledger) -> None:
    assert ledger.run(nondeterministic, tags=None) == 3  # None means no tags
    assert ledger.purge(0).runs == 1  # seconds, like every other duration option
    with pytest.raises(fl.ConfigurationError, match="older_than must be a timedelta"):
        ledger.purge("90d")  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigurationError, match="tags must be strings"):
        ledger.run(nondeterministic, tags=5)  # type: ignore[arg-type]


def test_the_python_api_takes_the_short_ids_the_cli_prints(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(generator_flow, False)
    short = info.value.run_id[:13]  # what `flowledger runs` shows
    assert ledger.get(short).id == info.value.run_id
    assert ledger.run_uuid(short) == uuid.UUID(info.value.run_id)
    assert [e.type for e in ledger.events(short).events][-1] == "run.failed"
    assert ledger.step(short, 1).status is fl.StepStatus.FAILED
    with pytest.raises(fl.RunFailed):  # resumes (and fails the same way), no lookup error
        ledger.resume(short).result(timeout=30)
    assert ledger.cancel(short) is False
    with pytest.raises(fl.RunNotFound):
        ledger.get("not-hex")


@fl.workflow(name="cor_async_child")
async def async_child(x: int) -> int:
    return x


def test_a_sync_workflow_calling_an_async_child_is_told_at_the_call(ledger: fl.Ledger) -> None:
    @fl.workflow(name="cor_sync_parent")
    def sync_parent() -> object:
        return async_child(1)  # a coroutine nobody would ever await

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(sync_parent)
    cause = info.value.__cause__
    assert isinstance(cause, fl.ConfigurationError)
    assert "'cor_sync_parent' is synchronous but calls the async workflow " \
           "'cor_async_child'" in str(cause)
    assert ledger.get(info.value.run_id).steps == ()  # nothing recorded for the call
    assert ledger.runs(workflow="cor_async_child").runs == ()


@fl.step()
def scaled(x: int, factor: int) -> int:
    return x * factor


def test_map_steps_takes_a_partial_of_a_step(ledger: fl.Ledger) -> None:
    @fl.workflow(name="cor_partial")
    def wf() -> list[int]:
        return fl.map_steps(functools.partial(scaled, factor=10), [1, 2, 3])

    assert ledger.run(wf) == [10, 20, 30]
    run = ledger.get(ledger.runs(workflow="cor_partial").runs[0].id)
    assert [(s.name, s.input) for s in run.steps] == [
        ("scaled", {"x": 1, "factor": 10}), ("scaled", {"x": 2, "factor": 10}),
        ("scaled", {"x": 3, "factor": 10})]
    assert fl.map_steps(functools.partial(scaled, factor=2), [4]) == [8]  # outside a run
    with pytest.raises(fl.ConfigurationError, match="is not a @step"):
        fl.map_steps(functools.partial(print, end=""), [1])


def test_a_queued_run_whose_worker_died_says_so_before_its_lease_expires(
        ledger: fl.Ledger) -> None:
    done = ledger.start(nondeterministic)
    assert done.result(timeout=30) == 3
    as_if_killed(ledger, done.id, 2)
    with ledger.store.backend.engine.begin() as conn:  # held by a (dead) worker's lease
        conn.execute(update(runs).where(runs.c.id == uuid.UUID(done.id)).values(
            queue="default", lease_expires_at=ids.now_us() + 3_600_000_000))
    stalled = ledger.get(done.id).stalled
    assert stalled is not None and "its worker (pid 999999999) is gone" in stalled
    assert "takes it over when its lease expires" in stalled
