"""Shared rate limits with real worker processes (``flowledger worker``), on SQLite and
PostgreSQL: a step limit shared by 3 workers, a queue's claim rate shared by 2. The
checks read a side-effect log of when each step body started (wall clock, one host)."""

from __future__ import annotations

import bisect
import time
from datetime import timedelta
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers import worker_app as app
from tests.helpers.workers import wait_until, workers


def call_times(path: Path, kind: str) -> list[float]:
    """The start times (unix seconds) of the step bodies logged as ``kind``, sorted."""
    if not path.exists():
        return []
    return sorted(float(fields[4]) for fields in
                  (line.split() for line in path.read_text().splitlines())
                  if fields[0] == kind)


# Calls are timed as they happen: a thread of a worker woken late by a busy machine moves
# its call towards the next ones. These run after the parallel part of the suite, alone.
pytestmark = pytest.mark.serial


def busiest_window(times: list[float], width: float = 1.0) -> int:
    """The most calls in any closed window of ``width`` seconds."""
    return max(bisect.bisect_right(times, t + width) - i for i, t in enumerate(times))


def all_completed(ledger: fl.Ledger, count: int) -> bool:
    runs = list(ledger.runs(limit=1000))
    if any(r.status is fl.RunStatus.FAILED for r in runs):
        raise AssertionError(f"a run failed: {[r.error for r in runs if r.error]}")
    return len(runs) == count and all(r.status is fl.RunStatus.COMPLETED for r in runs)


def test_a_step_limit_holds_across_three_workers(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    with fl.Ledger(db_url) as ledger:
        ledger.set_rate_limit("acceptance", 20, per=timedelta(seconds=1))
        for _ in range(24):
            ledger.submit(app.limited_steps, 5)  # 24 runs x 5 steps = 120 limited calls
        started = time.monotonic()
        with workers(db_url, 3, "--concurrency", "4", side_log=log):
            wait_until(lambda: all_completed(ledger, 24), timeout=90,
                       what="the 24 runs to complete")
        elapsed = time.monotonic() - started
        times = call_times(log, "L")
        assert len(times) == 120
        # 120 calls at 20/s: the first at once, the last 119 intervals (5.95 s) later.
        assert times[-1] - times[0] >= 5.5
        assert elapsed >= 5.5
        assert busiest_window(times) <= 22, busiest_window(times)
        # The waits are on record, with each attempt's logs.
        run = next(iter(ledger.runs(limit=1)))
        logged = [entry.message for attempt in ledger.logs(run.id)
                  for entry in attempt.records]
        assert len(logged) == 5
        assert all(m.startswith("rate limit 'acceptance': waited ") for m in logged)


def test_a_queue_rate_holds_across_two_workers(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "starts.log"
    with fl.Ledger(db_url) as ledger:
        ledger.set_queue_limits("rated", rate="10/s")
        for _ in range(30):
            ledger.submit(app.stamped, queue="rated")
        with workers(db_url, 2, "--queue", "rated", "--concurrency", "8", side_log=log):
            wait_until(lambda: all_completed(ledger, 30), timeout=60,
                       what="the 30 runs to complete")
        times = call_times(log, "S")
        assert len(times) == 30
        # 30 claims at 10/s: 29 intervals of 100 ms (less the jitter of starting a run).
        assert times[-1] - times[0] >= 2.7
        assert busiest_window(times) <= 12, busiest_window(times)
        (info,) = [q for q in ledger.queues() if q.name == "rated"]
        assert info.rate == "10/s"
