"""Redaction and resume across real processes: SIGKILL mid-run, resume in another one.

A step whose recorded output was redacted is executed again on resume (its output cannot
be given back); the others replay. A run whose inputs were redacted refuses to resume
in another process (RedactedInputs) rather than run with the marker. A worker started
with --redact records redacted values.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers import redacting
from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.workers import wait_until, workers

pytestmark = pytest.mark.serial


def child(*args: str, log: Path, block: bool = False) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=CHILD_PATH, FLOWLEDGER_TEST_LOG=str(log),
               FLOWLEDGER_REDACT="api_key, password", BLOCK="1" if block else "")
    return subprocess.Popen([sys.executable, "-m", "tests.helpers.redacting", *args],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def expect(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise AssertionError(f"no {prefix!r} in {seen}; stderr: {proc.stderr and proc.stderr.read()}")


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def start_and_kill(db_url: str, workflow: str, log: Path) -> str:
    proc = child("start", db_url, workflow, log=log, block=True)
    run_id = expect(proc, "run ")
    expect(proc, "inflight")
    kill(proc)
    return run_id


def finish(proc: subprocess.Popen[str]) -> tuple[int, list[str], str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.splitlines(), err


def test_redacted_output_step_runs_again_on_resume_others_replay(db_url: str,
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_id = start_and_kill(db_url, "redacted_output", log)
    with fl.Ledger(db_url) as ledger:
        crashed = ledger.get(run_id)
        assert crashed.status is fl.RunStatus.RUNNING
        fetch, doubled = crashed.steps[0], crashed.steps[1]
        assert fetch.output == {"user": "ana", "api_key": fl.redact.MARKER}
        assert fetch.redacted and not doubled.redacted
        assert crashed.steps[2].input["api_key"] == fl.redact.MARKER

    code, lines, err = finish(child("resume", db_url, run_id, log=log))
    assert code == 0, (lines, err)
    assert lines[-1] == 'result "used 15 42"'  # the real key reached `use` again
    counts = Counter(log.read_text().splitlines())
    # fetch_credentials ran again (its output was redacted); count replayed.
    assert counts == Counter({"fetch": 2, "count 21": 1, "use": 2})
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.COMPLETED
        assert [s.attempts for s in run.steps] == [2, 1, 2]
        assert run.steps[0].redacted and run.steps[0].output["api_key"] == "[redacted]"


def test_redacted_inputs_refuse_resume_in_another_process(db_url: str,
                                                          tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_id = start_and_kill(db_url, "redacted_inputs", log)
    code, lines, _ = finish(child("resume", db_url, run_id, log=log))
    assert code == 1
    assert lines[-1].startswith("error RedactedInputs ")
    assert "login.password" in lines[-1] and "by reference" in lines[-1]
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        # Refused before claiming: the record is as the crash left it, nothing ran.
        assert run.status is fl.RunStatus.RUNNING
        assert run.inputs == {"login": {"user": "ana", "password": "[redacted]"}}
        with pytest.raises(fl.RedactedInputs) as caught:
            ledger.resume(run_id, force=True)
        assert caught.value.fields == ("login.password",)
    assert Counter(log.read_text().splitlines()) == Counter({"count 1": 1, "use": 1})


def test_worker_redact_option_records_redacted_values(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:  # this process redacts nothing
        handle = ledger.submit(redacting.redacted_worker, queue="redaction")
        with workers(db_url, 1, "--app", "tests.helpers.redacting", "--queue", "redaction",
                     "--redact", "password"):
            wait_until(lambda: ledger.get(handle.id).status is fl.RunStatus.COMPLETED,
                       timeout=60, what="the worker to complete the run")
        run = ledger.get(handle.id)
        assert run.output == {"password": "[redacted]"}
        assert run.steps[0].redacted
