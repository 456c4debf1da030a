"""Every attempt of every step is a record: its times, outcome and error, on every
interface that shows steps (get, JSON, events, stats, exports, archives)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers.gate import Gate


class Flaky(Exception):
    pass


def _flaky_workflow(name: str, failures: int, retries: int) -> fl.workflow:  # type: ignore[valid-type]
    left = {"n": failures}

    @fl.step(name=f"{name}_call", retries=retries, backoff=0.001)
    def call() -> str:
        if left["n"]:
            left["n"] -= 1
            raise Flaky(f"{left['n']} failures left")
        return "ok"

    @fl.workflow(name=name)
    def wf() -> str:
        return call()

    return wf


def test_each_attempt_of_a_retried_step_is_recorded(ledger: fl.Ledger) -> None:
    run_id = ledger.start(_flaky_workflow("att_retry", 2, 3)).id
    ledger.handle(run_id).result(timeout=30)
    step = ledger.get(run_id).steps[0]
    assert (step.status, step.attempts, step.error) == (fl.StepStatus.COMPLETED, 3, None)
    history = step.attempt_history
    assert [a.number for a in history] == [1, 2, 3]
    assert [a.outcome for a in history] == ["failed", "failed", "completed"]
    for attempt, left in zip(history[:2], (1, 0), strict=True):
        assert attempt.error is not None
        assert attempt.error.type == "tests.contract.test_attempts.Flaky"
        assert attempt.error.message == f"{left} failures left"
        assert "raise Flaky" in attempt.error.traceback
        assert attempt.retry_at is not None and attempt.completed_at is not None
        assert attempt.started_at is not None and attempt.started_at <= attempt.completed_at
        assert attempt.duration == attempt.completed_at - attempt.started_at
        assert attempt.retry_at >= attempt.completed_at and not attempt.interrupted
    assert history[0].completed_at <= history[1].started_at  # type: ignore[operator]
    assert history[2].error is None and history[2].retry_at is None
    assert history[2].started_at == step.started_at
    # The JSON form carries them too (API answers and exports are built from it).
    recorded = json.loads(json.dumps(step.to_dict()))["attempt_history"]
    assert [(a["number"], a["outcome"], a["interrupted"]) for a in recorded] == [
        (1, "failed", False), (2, "failed", False), (3, "completed", False)]
    assert recorded[0]["error"]["message"] == "1 failures left"


def test_the_event_stream_tells_each_retry_with_its_error(ledger: fl.Ledger) -> None:
    run_id = ledger.start(_flaky_workflow("att_events", 2, 2)).id
    events = list(ledger.watch(run_id, poll_interval=0.01, timeout=30))
    steps = [(e.type, e.attempt, e.error.message if e.error else None)
             for e in events if e.type.startswith("step.")]
    assert steps == [("step.started", 1, None), ("step.retrying", 1, "1 failures left"),
                     ("step.started", 2, None), ("step.retrying", 2, "0 failures left"),
                     ("step.started", 3, None), ("step.completed", 3, None)]
    # A client arriving late reads the same transitions from the records.
    assert [(e.type, e.attempt) for e in ledger.events(run_id).events
            if e.type.startswith("step.")] == [(t, a) for t, a, _ in steps]


def test_stats_count_failed_attempts_and_retries(ledger: fl.Ledger) -> None:
    ledger.run(_flaky_workflow("att_stats", 8, 8))   # fails 8 times, then succeeds
    ledger.run(_flaky_workflow("att_stats_once", 0, 8))
    by_name = {s.name: s for s in ledger.stats().steps}
    eight = by_name["att_stats_call"]
    assert (eight.count, eight.failed, eight.attempts) == (1, 0, 9)
    assert (eight.failed_attempts, eight.retried, eight.retry_rate) == (8, 1, 1.0)
    once = by_name["att_stats_once_call"]
    assert (once.attempts, once.failed_attempts, once.retry_rate) == (1, 0, 0.0)
    row = next(s for s in ledger.stats().to_dict()["steps"] if s["name"] == "att_stats_call")
    assert (row["failed_attempts"], row["retry_rate"]) == (8, 1.0)


def test_a_failed_step_that_is_resumed_keeps_its_failure(ledger: fl.Ledger) -> None:
    broken = {"on": True}

    @fl.step()
    def fragile() -> int:
        if broken["on"]:
            raise Flaky("down")
        return 7

    @fl.workflow(name="att_resume")
    def wf() -> int:
        return fragile()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    broken["on"] = False
    assert ledger.resume(info.value.run_id).result(timeout=30) == 7
    history = ledger.get(info.value.run_id).steps[0].attempt_history
    assert [(a.number, a.outcome) for a in history] == [(1, "failed"), (2, "completed")]
    assert history[0].retry_at is None and history[0].error is not None
    assert history[0].error.message == "down"


def test_an_attempt_cut_short_by_the_run_ending_is_interrupted(ledger: fl.Ledger) -> None:
    gate = Gate()
    pools: list[fl.StepPool] = []

    @fl.step()
    def slow() -> str:
        gate.wait()
        return "late"

    @fl.step()
    def boom() -> None:
        gate.arrived.wait(30)
        raise Flaky("boom")

    @fl.workflow(name="att_interrupt")
    def wf() -> None:
        pools.append(fl.StepPool(2))  # no with-block: the run fails while `slow` runs
        pools[0].submit(slow)
        pools[0].submit(boom).result()

    try:
        with pytest.raises(fl.RunFailed) as info:
            ledger.run(wf)
        run = ledger.get(info.value.run_id)
        assert run.status is fl.RunStatus.FAILED
        first = run.steps[0].attempt_history[0]
        assert first.outcome is fl.AttemptOutcome.INTERRUPTED and first.interrupted
        assert first.error is not None and "the run ended (failed)" in first.error.message
        assert first.completed_at is not None
    finally:
        gate.open()
        pools[0].shutdown()


def test_exports_and_archives_carry_the_attempt_history(ledger: fl.Ledger,
                                                        tmp_path: Path) -> None:
    ledger.run(_flaky_workflow("att_export", 1, 1))
    exported = [run.to_dict() for run in ledger.export(workflow="att_export")]
    history = exported[0]["steps"][0]["attempt_history"]
    assert [a["outcome"] for a in history] == ["failed", "completed"]
    archive = tmp_path / "old.jsonl.gz"
    report = ledger.purge(timedelta(0), archive=str(archive))
    assert report.runs == 1
    archived = list(fl.read_archive(str(archive)))
    assert archived[0]["steps"][0]["attempt_history"] == history


def test_a_recorded_traceback_starts_at_the_user_s_code(ledger: fl.Ledger) -> None:
    @fl.step()
    def deep() -> None:
        raise Flaky("from user code")

    @fl.workflow(name="att_traceback")
    def wf() -> None:
        deep()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    error = ledger.get(info.value.run_id).steps[0].error
    assert error is not None
    first_frame = error.traceback.splitlines()[1]
    assert "test_attempts.py" in first_frame, error.traceback
    assert "flowledger/executor.py" not in error.traceback
    assert "flowledger/timeouts.py" not in error.traceback
