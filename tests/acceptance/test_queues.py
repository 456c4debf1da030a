"""Queues with several real worker processes (``flowledger worker``), on SQLite and
PostgreSQL: priority, idempotency, limits, delays, schedules, cancellation, SIGTERM."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from sqlalchemy import make_url

import flowledger as fl
from tests.helpers import worker_app as app
from tests.helpers.procs import ROOT
from tests.helpers.proxy import OutageProxy
from tests.helpers.workers import WorkerProcess, wait_until, workers


def all_runs(ledger: fl.Ledger, **filters: object) -> list[fl.Run]:
    return list(ledger.runs(limit=1000, **filters))  # type: ignore[arg-type]


def finished(ledger: fl.Ledger, count: int, **filters: object) -> bool:
    runs = all_runs(ledger, **filters)
    return len(runs) >= count and all(r.status.finished for r in runs)


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def intervals(runs: list[fl.Run]) -> list[tuple[datetime, datetime]]:
    assert all(r.started_at and r.completed_at for r in runs)
    return [(r.started_at, r.completed_at) for r in runs]  # type: ignore[misc]


def side_log(path: Path) -> list[tuple[str, str, int, int]]:
    if not path.exists():
        return []
    return [(kind, run, int(pos), int(pid)) for kind, run, pos, pid
            in (line.split() for line in path.read_text().splitlines())]


def submit_to_gate(ledger: fl.Ledger, gate: Path, log: Path) -> fl.RunHandle:
    """Queue a run of ``gated`` and wait until a worker holds it at its gate (step 2)."""
    handle = ledger.submit(app.gated, str(gate))
    wait_until(lambda: ("B", handle.id, 2) in {e[:3] for e in side_log(log)},
               what="the run to reach its gate")
    return handle


def test_higher_priority_runs_start_first(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        low = [ledger.submit(app.one_step, n, priority=0).id for n in range(10)]
        high = [ledger.submit(app.one_step, n, priority=5).id for n in range(10)]
        with workers(db_url, 2, "--concurrency", "1"):
            wait_until(lambda: finished(ledger, 20), what="all runs finished")
        runs = sorted(all_runs(ledger), key=lambda r: r.started_at or datetime.max)
        order = [r.id for r in runs]
        assert all(r.status is fl.RunStatus.COMPLETED for r in runs)
        # Two workers claim concurrently, so one low run may start in the same instant as
        # the last high one; no more.
        assert max(order.index(i) for i in high) <= len(high)
        assert set(order[:len(high) - 1]) <= set(high)
        assert set(low) == set(order) - set(high)


def test_an_idempotency_key_submits_once_across_processes(db_url: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "flowledger", "--db", db_url, "submit",
               "tests.helpers.worker_app:one_step", "-i", "n=3",
               "--idempotency-key", "issue-42"]
    submitters = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
                  for _ in range(4)]
    printed = {proc.communicate(timeout=60)[0].strip() for proc in submitters}
    assert all(proc.returncode == 0 for proc in submitters)
    assert len(printed) == 1
    log = tmp_path / "side.log"
    with fl.Ledger(db_url) as ledger:
        runs = all_runs(ledger)
        assert [r.id for r in runs] == list(printed)
        assert runs[0].idempotency_key == "issue-42"
        again = ledger.submit(app.one_step, 99, idempotency_key="issue-42")
        assert again.id == runs[0].id
        with workers(db_url, 2, side_log=log):
            assert again.result(timeout=60) == 4
        assert [e[0] for e in side_log(log)] == ["B", "E"]


def test_a_queue_limit_holds_across_workers(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        ledger.set_queue_limits("limited", concurrency=2)
        for n in range(10):
            ledger.submit(app.one_step, n, 0.15, queue="limited")
        with workers(db_url, 3, "--queue", "limited", "--concurrency", "3"):
            wait_until(lambda: finished(ledger, 10), what="all runs finished")
        runs = all_runs(ledger)
        assert all(r.status is fl.RunStatus.COMPLETED for r in runs)
        assert max_overlap(intervals(runs)) == 2


def test_a_per_key_limit_holds_across_workers(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        ledger.set_queue_limits("keyed", key_concurrency=1)
        for n in range(12):
            ledger.submit(app.one_step, n, 0.1, queue="keyed", concurrency_key="abc"[n % 3])
        with workers(db_url, 3, "--queue", "keyed", "--concurrency", "3"):
            wait_until(lambda: finished(ledger, 12), what="all runs finished")
        runs = all_runs(ledger)
        assert all(r.status is fl.RunStatus.COMPLETED for r in runs)
        inputs_key = {r.id: "abc"[r.inputs["n"] % 3] for r in runs}
        for key in "abc":
            assert max_overlap(intervals([r for r in runs if inputs_key[r.id] == key])) == 1
        assert max_overlap(intervals(runs)) >= 2  # different keys did run side by side


def test_a_delayed_run_waits_for_its_time(db_url: str) -> None:
    # workers first (started and registered): "the undelayed run went first" must not
    # depend on their start-up time
    with fl.Ledger(db_url) as ledger, workers(db_url, 2):
        delayed = ledger.submit(app.one_step, 1, delay=1.0)
        now = ledger.submit(app.one_step, 2)
        assert delayed.status() is fl.RunStatus.PENDING
        assert now.result(timeout=60) == 3
        assert delayed.result(timeout=60) == 2
        run = delayed.get()
        assert run.scheduled_at is not None and run.started_at is not None
        assert run.started_at >= run.scheduled_at
        assert (run.started_at - run.created_at).total_seconds() >= 1.0
        assert (now.get().started_at or datetime.max) < run.scheduled_at


def test_each_cron_tick_starts_exactly_one_run(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        ledger.add_schedule(app.one_step, cron="* * * * * *", name="tick", inputs={"n": 5})
        with workers(db_url, 3):
            wait_until(lambda: len(all_runs(ledger, tag="schedule:tick",
                                            status="completed")) >= 4,
                       what="four ticks")
        runs = all_runs(ledger, tag="schedule:tick")
        keys = Counter(r.idempotency_key for r in runs)
        assert all(count == 1 for count in keys.values())
        ticks = sorted(datetime.fromisoformat(str(key).split(":", 2)[2]) for key in keys)
        gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(ticks)}
        assert gaps == {1.0}  # consecutive seconds: none skipped, none doubled
        assert ledger.schedules()[0].last_run_id in {r.id for r in runs}


def test_workers_store_schedules_declared_in_code(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        proc = WorkerProcess(db_url, "--queue", "declared", "--app",
                             "tests.helpers.worker_schedules")
        try:
            wait_until(lambda: len(all_runs(ledger, status="completed")) >= 1,
                       what="a run of the declared schedule")
        finally:
            code, err = proc.stop()
        assert code == 0, err
        assert [s.name for s in ledger.schedules()] == ["declared_every_second"]
        assert all_runs(ledger)[0].tags == ("schedule:declared_every_second",)


def test_cancel_reaches_a_run_on_a_worker(db_url: str, tmp_path: Path) -> None:
    gate, log = tmp_path / "gate", tmp_path / "side.log"
    with fl.Ledger(db_url) as ledger, workers(db_url, 1, side_log=log):
        handle = submit_to_gate(ledger, gate, log)
        assert ledger.cancel(handle.id) is True
        gate.touch()
        wait_until(lambda: ("E", handle.id, 2) in {e[:3] for e in side_log(log)})
        wait_until(lambda: handle.get().counts.total == 2 and
                   handle.get().steps[1].status is not fl.StepStatus.RUNNING)
        run = handle.get()
        assert run.status is fl.RunStatus.CANCELLED
        assert [s.position for s in run.steps] == [1, 2]  # step 3 never began
    assert ("B", handle.id, 3) not in {e[:3] for e in side_log(log)}


def test_sigterm_finishes_the_step_and_hands_the_run_back(db_url: str, tmp_path: Path) -> None:
    gate, log = tmp_path / "gate", tmp_path / "side.log"
    with fl.Ledger(db_url) as ledger:
        first = WorkerProcess(db_url, side_log=log, name="first")
        handle = submit_to_gate(ledger, gate, log)
        first.signal(signal.SIGTERM)
        wait_until(lambda: [w.state for w in ledger.workers()] == ["stopping"],
                   what="the worker to start shutting down")
        gate.touch()
        code, err = first.stop(signal_first=False)
        assert code == 0, err
        # one log line per run: claimed, then handed back; the summary counts it
        assert f"run {handle.id} (gated): claimed" in err, err
        assert f"run {handle.id} (gated): handed back to queue default" in err, err
        assert "stopped (1 run handed back)" in err, err
        run = handle.get()
        assert run.status is fl.RunStatus.PENDING  # handed back, not failed
        assert [(s.position, s.status.value) for s in run.steps] == [(1, "completed"),
                                                                     (2, "completed")]
        assert run.steps[1].output == "first"
        assert run.recovery_attempts == 0
        assert ledger.workers() == []
        with workers(db_url, 1, side_log=log) as (second,):
            assert handle.result(timeout=60) == [1, "first", 4]
            # the lineage says where the second worker took it up
            run = handle.get()
            assert (run.resumed_from_position, run.recovery_attempts) == (3, 0)
            assert run.resumed_at is not None
            resumed = [e for e in ledger.events(handle.id).events if e.type == "run.resumed"]
            assert [e.position for e in resumed] == [3]
        assert f"run {handle.id} (gated): claimed, resuming at position 3" in second.output()
        assert f"run {handle.id} (gated): completed" in second.output()
    begun = Counter((e[1], e[2]) for e in side_log(log) if e[0] == "B")
    assert begun == {(handle.id, 1): 1, (handle.id, 2): 1, (handle.id, 3): 1}


def test_a_killed_worker_shows_as_lost_and_its_run_records_the_takeover(
        db_url: str, tmp_path: Path) -> None:
    gate, log = tmp_path / "gate", tmp_path / "side.log"
    with fl.Ledger(db_url) as ledger:
        first = WorkerProcess(db_url, "--lease", "1s", side_log=log, name="first")
        handle = submit_to_gate(ledger, gate, log)
        first.kill()
        # its process is gone (this host): lost at once, not "running" for a minute
        assert ledger.workers() == []
        lost = ledger.workers(include_lost=True)
        assert [(w.pid, w.state, w.alive) for w in lost] == [(first.pid, "lost", False)]
        shown = subprocess.run([sys.executable, "-m", "flowledger", "--db", db_url, "workers",
                                "--all"], capture_output=True, text=True, cwd=ROOT, check=True)
        assert "lost" in shown.stdout and str(first.pid) in shown.stdout
        # stalled at once (its worker is gone), then its lease expires too
        assert "worker" in (handle.get().stalled or "")
        wait_until(lambda: "lease expired" in (handle.get().stalled or ""),
                   what="the lease to expire")
        gate.touch()
        with workers(db_url, 1, side_log=log) as (second,):
            assert handle.result(timeout=60) == [1, "w0", 4]
        run = handle.get()
        assert (run.resumed_from_position, run.recovery_attempts) == (2, 1)
        assert run.stalled is None
        resumed = [e for e in ledger.events(handle.id).events if e.type == "run.resumed"]
        assert [e.position for e in resumed] == [2]
        interrupted = run.steps[1].attempt_history[0]
        assert interrupted.interrupted and run.steps[1].attempt_history[1].outcome == "completed"
        assert (f"run {handle.id} (gated): taken over after its worker was lost (recovery 1), "
                "resuming at position 2") in second.output()


def test_a_worker_that_loses_the_database_hands_its_run_back_once_it_returns(
        pg_database: str, tmp_path: Path) -> None:
    """The run does not wait out its lease (60 s here): as soon as the connection is
    back, the worker gives the run back to its queue and it resumes at once."""
    gate, log = tmp_path / "gate", tmp_path / "side.log"
    target = make_url(pg_database)
    proxy = OutageProxy(target.host or "127.0.0.1", target.port or 5432)
    through = target.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        with fl.Ledger(pg_database) as ledger:
            worker = WorkerProcess(through, "--lease", "60s", side_log=log, name="w")
            handle = submit_to_gate(ledger, gate, log)
            proxy.cut()
            gate.touch()  # the step ends while the database is unreachable
            wait_until(lambda: f"run {handle.id} (gated): stopped:" in worker.output(),
                       what="the worker to notice the outage")
            proxy.restore()
            wait_until(lambda: handle.status() is fl.RunStatus.COMPLETED, timeout=40,
                       what="the run to complete well within its 60 s lease")
            run = handle.get()
            assert run.output == [1, "w", 4] and run.recovery_attempts == 0
            assert run.resumed_from_position == 2
            assert f"run {handle.id} (gated): handed back to queue default (the store was " \
                   "unreachable)" in worker.output()
            assert run.steps[1].attempt_history[0].interrupted  # its result never landed
            code, err = worker.stop()
            assert code == 0, err
    finally:
        proxy.close()
