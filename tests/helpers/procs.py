"""Starting and killing the child processes of the acceptance tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: PYTHONPATH of child processes: this checkout's flowledger (not whichever one the
#: virtualenv's editable install points at) and its tests package.
CHILD_PATH = os.pathsep.join([str(ROOT / "src"), str(ROOT)])


class Child:
    """A ``tests.helpers.crashy`` process whose stdout lines the test reads as they come."""

    def __init__(self, *args: str, log: Path | None = None, block_at: str = "") -> None:
        env = dict(os.environ, PYTHONPATH=CHILD_PATH, BLOCK_AT=block_at,
                   FLOWLEDGER_TEST_LOG=str(log or os.devnull))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.crashy", *args], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def expect(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix`` (blocking read, no polling)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"child ended without printing {prefix!r}; output: {self.lines}; "
                             f"stderr: {self.stderr()}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(30) == -signal.SIGKILL

    def finish(self) -> tuple[int, str]:
        out, err = self.proc.communicate(timeout=60)
        self.lines += out.splitlines()
        return self.proc.returncode, err

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()


def run_to_end(*args: str, log: Path | None = None) -> tuple[int, list[str], str]:
    child = Child(*args, log=log)
    code, err = child.finish()
    return code, child.lines, err


def kill_in_flight(db_url: str, workflow: str, arg: str, log: Path, block_at: str) -> str:
    """Start a run in a child, SIGKILL it while the step tagged ``block_at`` runs."""
    child = Child("start", db_url, workflow, arg, log=log, block_at=block_at)
    run_id = child.expect("run ")
    child.expect(f"inflight {block_at}")
    child.kill()
    return run_id
