"""Pausing and resuming runs over HTTP against a real server, and the CLI's pause; other
owners cannot touch a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flowledger as fl
from tests.helpers import http_app
from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.server import serving


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
