"""A parent waiting on three concurrent children (fl.start_child + fl.gather) is
SIGKILLed in a real process, then resumed or recovered by another: no child is started
twice, and the parent completes with their outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers.procs import CHILD_PATH, ROOT


class App:
    """A ``tests.helpers.children_app`` process whose stdout the test reads line by line."""

    def __init__(self, *args: str, log: Path, block: bool = False) -> None:
        env = dict(os.environ, PYTHONPATH=CHILD_PATH, FLOWLEDGER_TEST_LOG=str(log),
                   BLOCK_FINISH="1" if block else "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.children_app", *args], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"no {prefix!r} in {self.lines}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def _wait_until_parent_waits_on_last_child(ledger: fl.Ledger, run_id: str) -> None:
    """Poll the record (the waiting happens in another process) until the parent's
    wait for its third child has begun."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        steps = ledger.get(run_id).steps
        if len(steps) == 6 and steps[-1].status is fl.StepStatus.RUNNING:
            return
        time.sleep(0.02)
    raise AssertionError(f"the parent never waited on its last child: {steps}")


@pytest.mark.parametrize("how", ["resume", "recover"])
def test_sigkill_parent_mid_gather_then_resume(db_url: str, tmp_path: Path, how: str) -> None:
    log = tmp_path / "log"
    app = App("start", db_url, "3", log=log, block=True)
    try:
        run_id = app.expect("run ")
        app.expect("inflight finish 2")
        with fl.Ledger(db_url) as ledger:
            _wait_until_parent_waits_on_last_child(ledger, run_id)
            app.stop()
            assert app.proc.returncode == -signal.SIGKILL
            before = ledger.get(run_id)
            kids_before = {str(step.child_run_id) for step in before.steps[:3]}
    finally:
        app.stop()
    assert before.status is fl.RunStatus.RUNNING
    assert [s.name for s in before.steps] == ["start_child:gather_kid"] * 3 \
        + ["child_result:gather_kid"] * 3
    assert [s.status for s in before.steps[3:]] == [fl.StepStatus.COMPLETED] * 2 \
        + [fl.StepStatus.RUNNING]

    again = App(how, db_url, *([run_id] if how == "resume" else []), log=log)
    try:
        out, err = again.proc.communicate(timeout=120)
    finally:
        again.stop()
    assert again.proc.returncode == 0, (out, err)
    assert "result [0, 11, 22]" in out.splitlines(), (out, err)

    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.COMPLETED
        kids = [r for r in ledger.runs(limit=100).runs
                if r.parent_id is not None and str(r.parent_id) == run_id]
        # Three child runs, the same three the first process started: none twice.
        assert len(kids) == 3
        assert {str(k.id) for k in kids} == kids_before
        assert all(k.status is fl.RunStatus.COMPLETED for k in kids)
        # The children ran at once: every child's ``work`` started before any ended.
        works = [ledger.get(k.id).steps[0] for k in kids]
        assert all(w.name == "work" for w in works)
        starts = [w.started_at for w in works]
        ends = [w.completed_at for w in works]
        assert None not in starts and None not in ends
        assert max(s for s in starts if s) < min(e for e in ends if e)
        resumed = [k for k in kids if k.resumed_at is not None]
        assert len(resumed) == 1  # child 2, taken over from the dead process

    counts = Counter(log.read_text().splitlines())
    for i in range(3):
        assert counts[f"start {i}"] == 1, counts  # completed steps never ran again
        assert counts[f"end {i}"] == 1, counts
    assert counts["finish 0"] == counts["finish 1"] == 1, counts
    assert counts["finish 2"] == 2, counts  # in flight at the kill: at-least-once
