"""Shared rate limits: the rate 4 worker processes achieve together on one limit, and
what a limited step costs next to an unlimited one.

Rate: the limit ``bench`` is set to 200/s; enough runs of 100 limited steps each are
queued for well over the measured window; 4 ``flowledger worker`` processes
(``--concurrency 8`` each) execute them. Every limited call appends its start time
(wall clock) to a log; after a 3 s warm-up, the calls in the next 30 s are counted: the
achieved rate, its deviation from 200/s, and the fewest and most calls in any second.

Overhead: in one process, a workflow of 1,000 trivial steps, limited (on a limit so
high nobody waits) and unlimited, on SQLite (a temporary file) and PostgreSQL: the
difference per step is the cost of the reservation (one more short write transaction).

Unless ``--url`` is given, the database ``flowledger_bench_rate_limits`` on the local
server is dropped and created afresh.

    .venv/bin/python bench/rate_limits.py [--rate 200] [--seconds 30] [--workers 4]
        [--url postgresql://postgres@127.0.0.1:5432/DB] [--sqlite]
"""

from __future__ import annotations

import argparse
import bisect
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

import flowledger as fl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the workers import the workflows as bench.rate_limits_app
app = importlib.import_module("bench.rate_limits_app")
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "flowledger_bench_rate_limits"
WARM_UP = 3.0


def fresh_database() -> str:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    return f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"


def shared_rate(url: str, rate: int, seconds: float, workers: int,
                logs: Path) -> tuple[float, float, int, int]:
    calls = logs / "calls.log"
    with fl.Ledger(url) as ledger:
        ledger.set_rate_limit("bench", rate, per=timedelta(seconds=1))
        steps = 100
        for _ in range(int(rate * (seconds + WARM_UP + 5) / steps) + 1):
            ledger.submit(app.limited_steps, steps, queue="bench-rate")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CALL_LOG": str(calls)}
    procs = []
    for i in range(workers):
        with (logs / f"worker-{i}.stderr").open("wb") as err:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "flowledger", "--db", url, "--quiet", "worker",
                 "--app", "bench.rate_limits_app", "--queue", "bench-rate",
                 "--concurrency", "8"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=err))
    try:
        deadline = time.monotonic() + 120
        while not calls.exists() or calls.stat().st_size == 0:
            if time.monotonic() > deadline:
                raise TimeoutError("no limited call within 120 s")
            time.sleep(0.1)
        time.sleep(WARM_UP + seconds + 1)  # a benchmark's measuring window, not a sync
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    times = sorted(float(line) for line in calls.read_text().split())
    start = times[0] + WARM_UP
    first, last = bisect.bisect_left(times, start), bisect.bisect_left(times, start + seconds)
    achieved = (last - first) / seconds
    per_second = [bisect.bisect_left(times, start + s + 1) - bisect.bisect_left(times, start + s)
                  for s in range(int(seconds))]
    return achieved, (achieved - rate) / rate * 100, min(per_second), max(per_second)


def overhead(url: str, steps: int = 1000, rounds: int = 3) -> tuple[float, float]:
    """(µs per unlimited step, µs per limited step), best of ``rounds``."""
    best = {"unlimited": float("inf"), "limited": float("inf")}
    with fl.Ledger(url) as ledger:
        ledger.set_rate_limit("bench", 10**9)  # never waits: only the reservation's cost
        os.environ.pop("BENCH_CALL_LOG", None)
        for _ in range(rounds):
            for name, workflow in (("unlimited", app.unlimited_steps),
                                   ("limited", app.limited_steps)):
                started = time.perf_counter()
                ledger.run(workflow, steps)
                best[name] = min(best[name], (time.perf_counter() - started) / steps * 1e6)
    return best["unlimited"], best["limited"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--url", default=None)
    parser.add_argument("--sqlite", action="store_true",
                        help="also measure the shared rate on a SQLite file")
    args = parser.parse_args()
    url = args.url or fresh_database()
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("PostgreSQL", url)]
        if args.sqlite:
            targets.append(("SQLite", f"sqlite:///{Path(tmp) / 'rate.db'}"))
        for name, target in targets:
            logs = Path(tmp) / name
            logs.mkdir()
            achieved, deviation, low, high = shared_rate(target, args.rate, args.seconds,
                                                         args.workers, logs)
            print(f"{name}: {args.workers} workers sharing {args.rate}/s for "
                  f"{args.seconds:g} s: {achieved:.2f} calls/s ({deviation:+.2f}%), "
                  f"{low}-{high} calls in any one second")
        for name, target in (("SQLite", f"sqlite:///{Path(tmp) / 'overhead.db'}"),
                             ("PostgreSQL", url)):
            plain, limited = overhead(target)
            print(f"{name}: {plain:.0f} µs per unlimited step, {limited:.0f} µs per limited "
                  f"step: +{limited - plain:.0f} µs per limited step")


if __name__ == "__main__":
    main()
