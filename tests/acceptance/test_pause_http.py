"""Pausing and resuming runs over HTTP against a real server, from the CLI, and under
real worker processes; other owners cannot touch a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import flowledger as fl
from tests.acceptance.test_worker_crash import side_log
from tests.helpers import http_app
from tests.helpers import worker_app as app
from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.server import serving
from tests.helpers.workers import WorkerProcess, wait_registered, wait_until


def test_pause_and_resume_over_http(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("alice")
        bob = ledger.create_token("bob").secret
        run_id = ledger.submit(http_app.report, 1, owner="alice").id
    with serving(db_url) as server:
        alice, other = server.client(token.secret), server.client(bob)
        assert other.post(f"/runs/{run_id}/pause", json={}).status_code == 404
        paused = alice.post(f"/runs/{run_id}/pause", json={"reason": "hold"})
        assert paused.status_code == 200, paused.text
        assert paused.json() == {"id": run_id, "status": "paused", "changed": True}
        run = alice.get(f"/runs/{run_id}").json()
        assert (run["status"], run["pause_reason"], run["paused_by"]) == (
            "paused", "hold", f"token {token.info.id}")
        assert alice.post(f"/runs/{run_id}/pause").json()["changed"] is False
        listed = alice.get("/runs", params={"status": "paused"}).json()["runs"]
        assert [r["id"] for r in listed] == [run_id]
        bad = alice.post(f"/runs/{run_id}/pause", json={"reason": ""})
        assert bad.status_code == 422
        assert other.post(f"/runs/{run_id}/resume").status_code == 404
        resumed = alice.post(f"/runs/{run_id}/resume")
        assert resumed.status_code == 202 and resumed.json()["status"] == "pending"
        assert alice.get(f"/runs/{run_id}").json()["paused_at"] is None


def test_the_cli_pauses_a_run(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        run_id = ledger.submit(http_app.report, 1).id
    command = [sys.executable, "-m", "flowledger", "--db", db_url]
    env = dict(os.environ, PYTHONPATH=CHILD_PATH)
    done = subprocess.run([*command, "pause", run_id, "--reason", "later", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"run_id": run_id, "paused": True, "status": "paused"}
    shown = subprocess.run([*command, "inspect", run_id], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=False)
    assert "paused" in shown.stdout and "later" in shown.stdout
    back = subprocess.run([*command, "resume", run_id], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    assert back.returncode == 0 and back.stdout.strip() == f"{run_id} is back in queue default"


def test_a_run_paused_on_one_worker_frees_its_slot_and_finishes_on_another(
        db_url: str, tmp_path: Path) -> None:
    log, gate = tmp_path / "side.log", tmp_path / "gate"
    with fl.Ledger(db_url) as ledger:
        run_id = ledger.submit(app.gated, str(gate)).id
        first = WorkerProcess(db_url, "--concurrency", "1", side_log=log)
        wait_registered(db_url, [first])
        try:
            wait_until(lambda: any(kind == "B" and pos == 2
                                   for kind, _, pos, _ in side_log(log)),
                       what="step 2 to be in flight")
            assert ledger.pause(run_id, reason="maintenance")  # from this other process
            gate.touch()  # the step in flight finishes and is recorded...
            wait_until(lambda: ledger.get(run_id).executor is None, what="the let-go")
            run = ledger.get(run_id)
            assert run.status is fl.RunStatus.PAUSED
            assert [s.status.value for s in run.steps] == ["completed", "completed"]
            # ...no further step starts, and the worker's only slot is free again.
            assert ledger.handle(ledger.submit(app.one_step, 1).id).result(timeout=60) == 2
            assert ledger.get(run_id).status is fl.RunStatus.PAUSED
        finally:
            code, err = first.stop()
            assert code == 0, err
        second = WorkerProcess(db_url, side_log=log)
        wait_registered(db_url, [second])
        try:
            ledger.resume(run_id)
            # Step 2 ran on the first worker (its name is recorded, ""), step 3 here.
            assert ledger.handle(run_id).result(timeout=60) == [1, "", 4]
        finally:
            code, err = second.stop()
            assert code == 0, err
    done = [(pos, pid) for kind, rid, pos, pid in side_log(log) if kind == "E" and rid == run_id]
    assert done == [(1, first.pid), (2, first.pid), (3, second.pid)]  # each step once
