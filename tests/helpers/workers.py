"""Worker processes for the queue tests: the real ``flowledger worker`` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import flowledger as fl
from tests.helpers.procs import CHILD_PATH, ROOT


class WorkerProcess:
    def __init__(self, db_url: str, *options: str, side_log: Path | None = None,
                 name: str = "") -> None:
        env = dict(os.environ, PYTHONPATH=CHILD_PATH, FLOWLEDGER_WORKER_NAME=name,
                   FLOWLEDGER_SIDE_LOG=str(side_log or ""))
        # A file, not a pipe: workers log a line per run, and a pipe nobody reads until
        # the end would fill up and block them.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "--db", db_url, "worker",
             "--app", "tests.helpers.worker_app", *options],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        self.pid = self.proc.pid

    def output(self) -> str:
        """What the worker wrote to stderr so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(30) == -signal.SIGKILL

    def stop(self, timeout: float = 60, *, signal_first: bool = True) -> tuple[int, str]:
        """SIGTERM (unless already sent), then wait for the graceful exit."""
        if signal_first and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, self.output()


@contextmanager
def workers(db_url: str, count: int, *options: str,
            side_log: Path | None = None) -> Iterator[list[WorkerProcess]]:
    started = [WorkerProcess(db_url, *options, side_log=side_log, name=f"w{n}")
               for n in range(count)]
    try:
        wait_registered(db_url, started)
        yield started
    finally:
        for worker in started:
            code, err = worker.stop()
            assert code in (0, -signal.SIGKILL), f"worker exited {code}: {err}"


def wait_registered(db_url: str, started: list[WorkerProcess]) -> None:
    """Wait until every worker has recorded itself, which it does after installing its
    signal handlers: a SIGTERM before that would kill it mid-start-up instead of
    stopping it gracefully."""
    pids = {worker.pid for worker in started}

    def registered() -> bool:
        for worker in started:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited {worker.proc.returncode} while starting: "
                                     f"{worker.output()}")
        return pids <= {info.pid for info in ledger.workers()}

    with fl.Ledger(db_url) as ledger:
        wait_until(registered, what="the workers to start")


def wait_until(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    """Poll a condition on the database until it holds (the workers are other processes:
    there is no in-process signal to wait on)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
