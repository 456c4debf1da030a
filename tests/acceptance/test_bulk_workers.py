"""Bulk cancel of runs that worker processes execute, issued by the CLI as a third
process: every matching run stops before its next step on whichever worker holds it,
and nothing else is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flowledger as fl
from tests.acceptance.test_worker_crash import side_log
from tests.helpers import worker_app as app
from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.workers import wait_until, workers


def test_workers_stop_the_runs_a_bulk_cancel_names(db_url: str, tmp_path: Path) -> None:
    log, gate = tmp_path / "side.log", tmp_path / "gate"
    with fl.Ledger(db_url) as ledger:
        held = [ledger.submit(app.gated, str(gate), queue="bulkq") for _ in range(10)]
        elsewhere = ledger.submit(app.gated, str(gate), queue="unserved")
        try:
            with workers(db_url, 2, "--queue", "bulkq", "--concurrency", "5",
                         side_log=log):
                # Every run is inside its gated step (position 2) on one of the workers.
                wait_until(lambda: len({run for kind, run, pos, _ in side_log(log)
                                        if (kind, pos) == ("B", 2)}) == 10,
                           what="ten runs held at their gate")
                assert {h.status() for h in held} == {fl.RunStatus.RUNNING}
                done = subprocess.run(
                    [sys.executable, "-m", "flowledger", "--db", db_url, "cancel",
                     "--workflow", "gated", "--status", "running"],
                    cwd=ROOT, env=dict(os.environ, PYTHONPATH=CHILD_PATH),
                    capture_output=True, text=True, timeout=120, check=False)
                assert done.returncode == 0, done.stderr
                assert done.stdout.strip() == "cancelled 10 runs"
                gate.touch()
                wait_until(lambda: sum(kind == "E" and pos == 2
                                       for kind, _, pos, _ in side_log(log)) == 10,
                           what="the gated steps to end")
                for handle in held:
                    try:
                        handle.result(timeout=60)
                    except fl.RunCancelled:
                        continue
                    raise AssertionError(f"run {handle.id} was not cancelled")
        finally:
            gate.touch()
        # Each stopped before its next step, whichever worker held it.
        assert not [e for e in side_log(log) if e[2] == 3]
        assert {len(ledger.get(h.id).steps) for h in held} == {2}
        assert elsewhere.status() is fl.RunStatus.PENDING  # not running: not matched
