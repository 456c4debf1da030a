"""`run` → SIGKILL → `runs --status running` → `resume` → `inspect`, each its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.procs import CHILD_PATH, ROOT, Child


def flowledger(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowledger", "--db", db_url, *args],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=CHILD_PATH, **env),
                          capture_output=True, text=True, timeout=120, check=False)


def test_crash_then_resume_through_the_cli(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    env = dict(os.environ, PYTHONPATH=CHILD_PATH, BLOCK_AT="4", FLOWLEDGER_TEST_LOG=str(log))
    child = subprocess.Popen(
        [sys.executable, "-m", "flowledger", "--db", db_url, "run",
         "tests.helpers.crashy:chain", "--input", "n=6"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:  # the step prints this while it is in flight
        if line.startswith("inflight 4"):
            break
    child.kill()
    child.wait(30)

    running = flowledger(db_url, "runs", "--status", "running", "--json")
    assert running.returncode == 0, running.stderr
    [run] = json.loads(running.stdout)["runs"]
    assert run["workflow"] == "crash_chain" and run["counts"]["completed"] == 3

    resumed = flowledger(db_url, "resume", run["id"][:23], FLOWLEDGER_TEST_LOG=str(log))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == sum(i * i for i in range(1, 7))

    inspected = flowledger(db_url, "inspect", run["id"], "--json")
    record = json.loads(inspected.stdout)
    assert record["status"] == "completed" and record["recovery_attempts"] == 1
    assert record["resumed_from_position"] == 4
    assert [s["position"] for s in record["steps"]] == [1, 2, 3, 4, 5, 6]
    assert record["steps"][3]["attempts"] == 2

    text = flowledger(db_url, "inspect", run["id"])
    assert "resumed once" in text.stdout and "from position 4" in text.stdout
    assert log.read_text().splitlines().count("work 1") == 1


def test_cancel_a_live_run_through_the_cli(db_url: str, tmp_path: Path) -> None:
    child = Child("start", db_url, "chain", "4", log=tmp_path / "log", block_at="2")
    run_id = child.expect("run ")
    child.expect("inflight 2")
    result = flowledger(db_url, "cancel", run_id[:24])
    assert result.returncode == 0 and f"cancelled {run_id}" in result.stdout
    child.send("go")
    code, _ = child.finish()
    assert code == 1 and any(line.startswith("error RunCancelled") for line in child.lines)
    record = json.loads(flowledger(db_url, "inspect", run_id, "--json").stdout)
    assert record["status"] == "cancelled" and [s["position"] for s in record["steps"]] == [1, 2]
