"""Real processes are SIGKILLed mid-run; other processes resume them from the store."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers.procs import Child, kill_in_flight, run_to_end

CHAIN_OUTPUT = sum(i * i for i in range(1, 21))


def _log(path: Path) -> Counter[str]:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def _result(lines: list[str]) -> object:
    found = [line for line in lines if line.startswith("result ")]
    assert found, lines
    return json.loads(found[-1].removeprefix("result "))


def test_uninterrupted_run_output(db_url: str, tmp_path: Path) -> None:
    code, lines, err = run_to_end("start", db_url, "chain", "20", log=tmp_path / "log")
    assert code == 0, err
    assert _result(lines) == CHAIN_OUTPUT
    assert _log(tmp_path / "log") == Counter(f"work {i}" for i in range(1, 21))


@pytest.mark.parametrize("kill_at", [1, 7, 13, 20])
def test_sigkill_mid_run_then_resume_from_another_process(db_url: str, tmp_path: Path,
                                                          kill_at: int) -> None:
    log = tmp_path / "log"
    run_id = kill_in_flight(db_url, "chain", "20", log, str(kill_at))

    with fl.Ledger(db_url) as ledger:
        crashed = ledger.get(run_id)
        assert crashed.status is fl.RunStatus.RUNNING  # the record says it never finished
        completed_before = {s.position for s in crashed.steps
                            if s.status is fl.StepStatus.COMPLETED}
        assert completed_before == set(range(1, kill_at))
        assert crashed.steps[-1].position == kill_at
        assert crashed.steps[-1].status is fl.StepStatus.RUNNING

    code, lines, err = run_to_end("resume", db_url, run_id, log=log)
    assert code == 0, err
    assert _result(lines) == CHAIN_OUTPUT

    counts = _log(log)
    for position in range(1, 21):
        times = counts[f"work {position}"]
        if position in completed_before:
            assert times == 1, (position, counts)
        elif position == kill_at:
            assert 1 <= times <= 2, (position, counts)
        else:
            assert times == 1, (position, counts)

    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.COMPLETED
        assert run.output == CHAIN_OUTPUT
        assert run.recovery_attempts == 1 and run.resumed_from_position == kill_at
        assert [s.position for s in run.steps] == list(range(1, 21))
        assert all(s.status is fl.StepStatus.COMPLETED for s in run.steps)
        assert run.steps[kill_at - 1].attempts == 2
        assert run.counts.completed == 20
        # The attempt the kill interrupted stays on record, marked as such.
        first, second = run.steps[kill_at - 1].attempt_history
        assert (first.number, first.outcome, first.interrupted) == (
            1, fl.AttemptOutcome.INTERRUPTED, True)
        assert first.started_at is not None and first.completed_at is None
        assert first.error is not None and "stopped" in first.error.message
        assert (second.number, second.outcome, second.interrupted) == (
            2, fl.AttemptOutcome.COMPLETED, False)
        assert all(len(s.attempt_history) == 1 for s in run.steps if s.position != kill_at)


def test_retry_after_a_crash_continues_the_durable_attempt_count(db_url: str,
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_id = kill_in_flight(db_url, "retry", "0", log, "attempt3")
    with fl.Ledger(db_url) as ledger:
        step = ledger.get(run_id).steps[0]
        assert (step.status, step.attempts) == (fl.StepStatus.RUNNING, 3)
        failed = step.attempt_history[:2]
        assert [a.outcome for a in step.attempt_history] == ["failed", "failed", "running"]
        assert [a.error.message for a in failed if a.error] == ["attempt 1 failed",
                                                                 "attempt 2 failed"]
        assert all(a.retry_at is not None and "ConnectionError" in a.error.traceback
                   for a in failed if a.error)

    code, lines, err = run_to_end("resume", db_url, run_id, log=log)
    assert code == 0, err
    assert _result(lines) == 4  # attempt 4, not a fresh attempt 1
    assert log.read_text().splitlines() == ["attempt 1", "attempt 2", "attempt 3", "attempt 4"]
    with fl.Ledger(db_url) as ledger:
        step = ledger.get(run_id).steps[0]
        assert step.attempts == 4
        assert [(a.number, a.outcome) for a in step.attempt_history] == [
            (1, "failed"), (2, "failed"), (3, "interrupted"), (4, "completed")]
        assert step.attempt_history[2].interrupted


def test_cancel_from_a_second_process_stops_before_the_next_step(db_url: str,
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = Child("start", db_url, "chain", "5", log=log, block_at="2")
    run_id = child.expect("run ")
    child.expect("inflight 2")
    with fl.Ledger(db_url) as ledger:  # this test process is the second process
        assert ledger.cancel(run_id) is True
    child.send("go")
    code, err = child.finish()
    assert code == 1, err
    assert any(line.startswith("error RunCancelled") for line in child.lines), child.lines
    assert _log(log) == Counter({"work 1": 1, "work 2": 1})
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.CANCELLED
        assert [(s.position, s.status) for s in run.steps] == [
            (1, fl.StepStatus.COMPLETED), (2, fl.StepStatus.COMPLETED)]
        assert run.counts.total == 2


@pytest.mark.parametrize("workflow", ["fanout_async", "fanout_threads"])
def test_concurrent_steps_resume_deterministically(db_url: str, tmp_path: Path,
                                                   workflow: str) -> None:
    log = tmp_path / "log"
    run_id = kill_in_flight(db_url, workflow, "8", log, "3")
    with fl.Ledger(db_url) as ledger:
        before = ledger.get(run_id)
        done_before = {s.position for s in before.steps if s.status is fl.StepStatus.COMPLETED}
        assert 4 not in done_before  # item 3 (position 4) was in flight

    code, lines, err = run_to_end("resume", db_url, run_id, log=log)
    assert code == 0, err
    assert _result(lines) == [i * 10 for i in range(8)]
    counts = _log(log)
    for position in done_before:
        assert counts[f"item {position - 1}"] == 1
    assert all(1 <= counts[f"item {i}"] <= 2 for i in range(8))
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        # Position p always holds item p-1, before and after the crash.
        assert [(s.position, s.input, s.output) for s in run.steps] == [
            (i + 1, {"i": i}, i * 10) for i in range(8)]


def test_recover_resumes_runs_of_dead_processes(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_id = kill_in_flight(db_url, "chain", "6", log, "4")
    code, lines, err = run_to_end("recover", db_url, log=log)
    assert code == 0, err
    assert "recovered 1" in lines
    assert _result(lines) == sum(i * i for i in range(1, 7))
    with fl.Ledger(db_url) as ledger:
        assert ledger.get(run_id).status is fl.RunStatus.COMPLETED
        assert ledger.recover() == []  # nothing left to recover


def test_crash_inside_a_child_run_resumes_parent_and_child(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    parent_id = kill_in_flight(db_url, "parent", "4", log, "3")
    with fl.Ledger(db_url) as ledger:
        kid = ledger.runs(parent=parent_id).runs[0]
        assert kid.status is fl.RunStatus.RUNNING and kid.counts.completed == 2

    code, lines, err = run_to_end("resume", db_url, parent_id, log=log)
    assert code == 0, err
    assert _result(lines) == 1 + 4 + 9 + 16 + 100 * 100
    counts = _log(log)
    assert counts["work 1"] == 1 and counts["work 2"] == 1 and counts["work 4"] == 1
    assert 1 <= counts["work 3"] <= 2 and counts["work 100"] == 1
    with fl.Ledger(db_url) as ledger:
        parent_run = ledger.get(parent_id)
        assert parent_run.status is fl.RunStatus.COMPLETED
        assert [s.name for s in parent_run.steps] == ["crash_chain", "work"]
        kid_run = ledger.get(kid.id)
        assert kid_run.status is fl.RunStatus.COMPLETED and kid_run.recovery_attempts == 1
        assert parent_run.steps[0].child_run_id == kid.id


def test_context_survives_sigkill_and_resume(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_id = kill_in_flight(db_url, "context", "4", log, "3")
    with fl.Ledger(db_url) as ledger:
        # Steps 1-2 committed their values; step 3 was in flight, so its are not there.
        assert ledger.get(run_id).context == {"started": True, "last": 2,
                                              "item1": {"square": 1}, "item2": {"square": 4}}
    code, lines, err = run_to_end("resume", db_url, run_id, log=log)
    assert code == 0, err
    assert _result(lines) == {"started": True, "last": 4, "item1": {"square": 1},
                              "item2": {"square": 4}, "item3": {"square": 9},
                              "item4": {"square": 16}}
