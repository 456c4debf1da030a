"""Worker processes for the queue tests: the real ``flowledger worker`` command."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import make_url

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

    def pause_holding_no_lock_on(self, db_url: str, run_id: str) -> None:
        """SIGSTOP this worker at a moment it holds no lock on the run's row.

        A process frozen inside a write transaction (a lease renewal, say) blocks every
        other writer of that row, on SQLite of the whole database, until it resumes: a
        real hazard of pausing processes, but not what a takeover test is about.
        """
        for _ in range(50):
            self.signal(signal.SIGSTOP)
            wait_until(lambda: _state(self.pid) == "T", timeout=10, what="the stop")
            if _row_is_free(db_url, run_id):
                return
            self.signal(signal.SIGCONT)
        raise AssertionError(f"worker {self.pid} held run {run_id} locked at 50 pauses")

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


def _state(pid: int) -> str:
    """A process's state letter (R, S, T for stopped, ...) from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def _row_is_free(db_url: str, run_id: str) -> bool:
    """Whether a writer can lock the run's row now (waiting at most 0.3 s)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        lite = sqlite3.connect(url.database or "", timeout=0.3, isolation_level=None)
        try:
            lite.execute("BEGIN IMMEDIATE")  # the database-wide write lock
            lite.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            lite.close()
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(
            hide_password=False)) as conn:
        try:
            conn.execute("SET LOCAL lock_timeout = '300ms'")
            conn.execute("SELECT 1 FROM flowledger_runs WHERE id = %s FOR UPDATE", (run_id,))
            return True
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            conn.rollback()


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
