"""Worker processes killed (SIGKILL) or paused (SIGSTOP) mid-run: every run completes,
no completed step runs twice, and no run is ever advanced by two workers at once."""

from __future__ import annotations

import signal
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers import worker_app as app
from tests.helpers.workers import WorkerProcess, wait_until

SIZES = {"postgresql": (1000, 4, 2), "sqlite": (200, 3, 1)}  # runs, workers, killed


def side_log(path: Path) -> list[tuple[str, str, int, int]]:
    if not path.exists():
        return []
    return [(kind, run, int(pos), int(pid)) for kind, run, pos, pid
            in (line.split() for line in path.read_text().splitlines())]


def count(ledger: fl.Ledger, status: str) -> int:
    total, cursor = 0, None
    while True:
        page = ledger.runs(status=status, limit=1000, cursor=cursor)
        total += len(page)
        cursor = page.next_cursor
        if cursor is None:
            return total


def check_no_run_had_two_workers(entries: list[tuple[str, str, int, int]],
                                 killed: set[int]) -> None:
    """Per run, the side-effect log must read as a sequence of workers taking turns, each
    turn but the last ended by that worker's death, and no worker coming back."""
    by_run: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for kind, run, position, pid in entries:
        by_run[run].append((kind, position, pid))
    for run, events in by_run.items():
        turns = [events[0][2]]
        for _, _, pid in events[1:]:
            if pid != turns[-1]:
                turns.append(pid)
        assert len(turns) == len(set(turns)), f"run {run}: workers interleaved: {events}"
        assert set(turns[:-1]) <= killed, f"run {run} changed hands without a kill: {events}"


def busiest(ledger: fl.Ledger, started: list[WorkerProcess],
            how_many: int) -> list[WorkerProcess]:
    """The workers holding the most runs right now: killing an idle one (SQLite lets one
    worker claim at a time) would test nothing."""
    by_pid = {worker.pid: worker for worker in started}
    held: dict[int, int] = {}

    def some_busy() -> bool:
        held.clear()
        held.update({w.pid: w.runs_held for w in ledger.workers() if w.pid in by_pid})
        return sum(1 for n in held.values() if n) >= how_many

    wait_until(some_busy, what="workers holding runs")
    ranked = sorted(held, key=lambda pid: held[pid], reverse=True)
    return [by_pid[pid] for pid in ranked[:how_many]]


@pytest.mark.timeout(600)
def test_killed_workers_lose_no_run_and_repeat_no_completed_step(db_url: str,
                                                                 tmp_path: Path) -> None:
    backend = db_url.split(":", 1)[0]
    runs, fleet, to_kill = SIZES[backend]
    log = tmp_path / "side.log"
    options = ("--concurrency", "8", "--lease", "2s")
    with fl.Ledger(db_url) as ledger:
        ids = [ledger.submit(app.five_steps, n).id for n in range(runs)]
        started = [WorkerProcess(db_url, *options, side_log=log) for _ in range(fleet)]
        try:
            wait_until(lambda: count(ledger, "completed") >= runs // 4, timeout=300,
                       what="a quarter of the runs")
            victims = busiest(ledger, started, to_kill)
            for victim in victims:
                victim.kill()
            killed = {victim.pid for victim in victims}
            started += [WorkerProcess(db_url, *options, side_log=log) for _ in victims]
            wait_until(lambda: count(ledger, "completed") == runs, timeout=300,
                       what="every run to complete")
        finally:
            for worker in started:
                if worker.proc.poll() is None:
                    code, err = worker.stop()
                    assert code == 0, err
        outputs = {run.id: run for run in ledger.runs(limit=1000)}
        if runs > 1000:
            raise AssertionError("page through the runs")
        assert {run_id: outputs[run_id].output for run_id in ids} == \
            {run_id: n + 15 for n, run_id in enumerate(ids)}
        recovered = [run for run in outputs.values() if run.recovery_attempts]
        assert recovered, "the kills hit no run in flight: nothing was tested"

    entries = side_log(log)
    check_no_run_had_two_workers(entries, killed)
    begun = Counter((run, position) for kind, run, position, _ in entries if kind == "B")
    ended = Counter((run, position) for kind, run, position, _ in entries if kind == "E")
    assert set(begun) == {(run_id, p) for run_id in ids for p in range(1, 6)}
    assert set(ended) == set(begun)
    repeated = [key for key, times in begun.items() if times > 1]
    # Only a step in flight when its worker died runs again, at most once more, and only
    # in runs that the dead workers held (one in-flight step per run).
    assert all(begun[key] == 2 for key in repeated)
    assert len({run for run, _ in repeated}) == len(repeated)
    held_by_killed = {run for _, run, _, pid in entries if pid in killed}
    assert {run for run, _ in repeated} <= held_by_killed
    assert len(repeated) <= to_kill * 8  # at most one step per run a dead worker held


def test_a_paused_worker_cannot_write_after_its_lease_moved(db_url: str,
                                                            tmp_path: Path) -> None:
    gate, log = tmp_path / "gate", tmp_path / "side.log"
    with fl.Ledger(db_url) as ledger:
        paused = WorkerProcess(db_url, "--lease", "1s", side_log=log, name="paused")
        takeover: WorkerProcess | None = None
        try:
            handle = ledger.submit(app.gated, str(gate))
            wait_until(lambda: ("B", handle.id, 2, paused.pid) in side_log(log),
                       what="the first worker to reach the gate")
            first_holder = handle.get().steps[0]
            paused.pause_holding_no_lock_on(db_url, handle.id)
            takeover = WorkerProcess(db_url, "--lease", "1s", side_log=log, name="takeover")
            wait_until(lambda: ("B", handle.id, 2, takeover.pid) in side_log(log),
                       what="the second worker to take the run over")
            gate.touch()
            assert handle.result(timeout=60) == [1, "takeover", 4]
            paused.signal(signal.SIGCONT)
            wait_until(lambda: ("E", handle.id, 2, paused.pid) in side_log(log),
                       what="the paused worker to finish its step")
        finally:
            paused.signal(signal.SIGCONT)
            code, err = paused.stop()
            if takeover is not None:
                takeover.stop()
        assert code == 0, err
        run = handle.get()
        assert run.status is fl.RunStatus.COMPLETED
        assert run.recovery_attempts == 1
        assert run.steps[0].completed_at == first_holder.completed_at  # replayed, not redone
        assert [s.output for s in run.steps] == [1, "takeover", 4]
        assert run.steps[1].attempts == 2
        assert run.output == [1, "takeover", 4]
    entries = side_log(log)
    # The paused worker finished its step body but recorded nothing, and stopped there.
    assert ("B", handle.id, 3, paused.pid) not in entries
    assert [e for e in entries if e[0] == "B" and e[2] == 3] == [
        ("B", handle.id, 3, takeover.pid)]
