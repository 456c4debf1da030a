"""Queued children (fl.start_child(..., queue=...)) executed by real worker processes; the
worker executing the parent is SIGKILLed while it waits, another takes the parent over."""

from __future__ import annotations

import signal
from pathlib import Path

import flowledger as fl
from tests.helpers import children_app
from tests.helpers.workers import WorkerProcess, wait_registered, wait_until

APP = ("--app", "tests.helpers.children_app", "--lease", "2s")


def test_worker_killed_while_its_parent_waits_on_queued_children(db_url: str,
                                                                  tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    started: list[WorkerProcess] = []
    try:
        kids = WorkerProcess(db_url, *APP, "--queue", "kids", "--concurrency", "4")
        first = WorkerProcess(db_url, *APP, "--queue", "parents")
        started += [kids, first]
        wait_registered(db_url, started)
        with fl.Ledger(db_url) as ledger:
            handle = ledger.submit(children_app.queued_parent, 3, str(gate), queue="parents")

            def parent_waits() -> bool:
                steps = ledger.get(handle.id).steps
                return len(steps) == 4 and steps[-1].status is fl.StepStatus.RUNNING

            wait_until(parent_waits, timeout=60, what="the parent to wait on its first child")
            children = {str(s.child_run_id) for s in ledger.get(handle.id).steps[:3]}
            wait_until(lambda: all(ledger.get(c).status is fl.RunStatus.RUNNING
                                   for c in children), timeout=60,
                       what="the three children to run on the kids worker")
            first.signal(signal.SIGKILL)
            assert first.proc.wait(30) == -signal.SIGKILL
            second = WorkerProcess(db_url, *APP, "--queue", "parents")
            started.append(second)
            gate.touch()
            assert handle.result(timeout=120) == [0, 10, 20]

            run = ledger.get(handle.id)
            assert run.recovery_attempts >= 1  # taken over by the second worker
            assert [s.attempts for s in run.steps[:3]] == [1, 1, 1]  # each started once
            found = [r for r in ledger.runs(limit=100).runs
                     if r.parent_id is not None and str(r.parent_id) == handle.id]
            assert {str(r.id) for r in found} == children  # no second child
            for child in found:
                record = ledger.get(child.id)
                assert record.queue == "kids" and record.status is fl.RunStatus.COMPLETED
                assert record.steps[0].attempts == 1  # never executed twice
    finally:
        for worker in started:
            worker.stop()
