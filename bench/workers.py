"""Worker processes on PostgreSQL: throughput in runs/s, and submit-to-start latency.

Throughput: N runs of a 3-step workflow of trivial steps are queued first, then 1, 2
and 4 ``flowledger worker`` processes are started on their queue. Timed two ways: from
starting the processes until the database shows all N completed (wall, start-up
included), and from the records, the first run's ``started_at`` to the last run's
``completed_at`` (steady state, the headline).

Latency: with 4 idle workers, runs are submitted one at a time ~20 ms apart; for each,
``started_at - created_at`` from its record, p50 and p99. Also on SQLite (a temporary
file) with 1 worker, which polls instead of being woken by NOTIFY.

Unless ``--url`` is given, the database ``flowledger_bench_workers`` on the local server
is dropped and created afresh (and left behind, for inspection).

    .venv/bin/python bench/workers.py [--runs 2000] [--concurrency 8]
        [--latency-runs 200] [--url postgresql://postgres@127.0.0.1:5432/DB]
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

import flowledger as fl

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "flowledger_bench_workers"
PEER_RUNS_PER_S = 150  # DBOS, sequential 3-step workflows, one process, this machine type


def start_workers(url: str, queue: str, count: int, concurrency: int,
                  logs: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    for i in range(count):
        log = logs / f"{queue}-{i}.stderr"
        with log.open("wb") as err:
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "flowledger", "--db", url, "--quiet", "worker",
                 "--app", "bench.workers_app", "--queue", queue,
                 "--concurrency", str(concurrency)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err), log))
    return procs


def stop_workers(procs: list[tuple[subprocess.Popen[bytes], Path]], problems: list[str]) -> None:
    for proc, _ in procs:
        proc.send_signal(signal.SIGTERM)
    for proc, log in procs:
        code = proc.wait(timeout=60)
        text = log.read_text().strip()
        if code != 0 or text:
            problems.append(f"{log.name}: exit {code}\n{text}")


def wait_until(done: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)


def finished(ledger: fl.Ledger, queue: str) -> int:
    for info in ledger.queues(window=timedelta(hours=1)):
        if info.name == queue:
            return info.completed + info.failed
    return 0


def records(ledger: fl.Ledger, tag: str) -> list[Any]:
    runs: list[Any] = []
    cursor = None
    while True:
        page = ledger.runs(tag=tag, limit=1000, cursor=cursor)
        runs += page.runs
        cursor = page.next_cursor
        if cursor is None:
            return runs


def throughput(ledger: fl.Ledger, url: str, workflow: Any, workers: int, n: int,
               concurrency: int, logs: Path, problems: list[str]) -> tuple[float, ...]:
    queue = f"throughput-{workers}"
    for i in range(n):
        ledger.submit(workflow, i, queue=queue, tags=[queue])
    launched = time.time()
    procs = start_workers(url, queue, workers, concurrency, logs)
    try:
        wait_until(lambda: finished(ledger, queue) >= n, f"{n} runs on {queue}")
        wall = time.time() - launched
    finally:
        stop_workers(procs, problems)
    runs = records(ledger, queue)
    bad = [r for r in runs if r.status != fl.RunStatus.COMPLETED]
    if len(runs) != n or bad:
        problems.append(f"{queue}: {len(runs)} runs, {len(bad)} not completed")
    first = min(r.started_at for r in runs).timestamp()
    last = max(r.completed_at for r in runs).timestamp()
    return n / wall, n / (last - first), first - launched, wall, last - first


def latency(ledger: fl.Ledger, url: str, workflow: Any, workers: int, n: int,
            concurrency: int, logs: Path, problems: list[str]) -> tuple[float, float, float]:
    queue = f"latency-{workers}"
    procs = start_workers(url, queue, workers, concurrency, logs)
    try:
        for i in range(5):  # warm-up; then 1 s for every worker to be listening
            ledger.submit(workflow, i, queue=queue, tags=["warm-up"])
        wait_until(lambda: finished(ledger, queue) >= 5, "warm-up runs")
        time.sleep(1.0)
        for i in range(n):
            ledger.submit(workflow, i, queue=queue, tags=[queue])
            time.sleep(0.02)
        wait_until(lambda: finished(ledger, queue) >= n + 5, f"{n} runs on {queue}")
    finally:
        stop_workers(procs, problems)
    ms = [(r.started_at - r.created_at).total_seconds() * 1000
          for r in records(ledger, queue)]
    return statistics.median(ms), statistics.quantiles(ms, n=100, method="inclusive")[98], max(ms)


def fresh_database() -> str:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    return ADMIN.rsplit("/", 1)[0] + "/" + DATABASE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=8, help="runs at once per worker")
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--url", help="an empty PostgreSQL database to use as is (default: a fresh "
                                      f"{DATABASE} on the local server)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # the workers import the workflow as bench.workers_app
    workflow = importlib.import_module("bench.workers_app").three_steps
    url = args.url or fresh_database()
    problems: list[str] = []

    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        with fl.Ledger(url) as ledger:
            rows = [(w, *throughput(ledger, url, workflow, w, args.runs, args.concurrency,
                                    logs, problems)) for w in args.workers]
            pg = latency(ledger, url, workflow, 4, args.latency_runs, args.concurrency,
                         logs, problems)
        sqlite_url = f"sqlite:///{tmp}/latency.db"
        with fl.Ledger(sqlite_url) as ledger:
            lite = latency(ledger, sqlite_url, workflow, 1, args.latency_runs,
                           args.concurrency, logs, problems)

    print(f"\nPostgreSQL, {args.runs} queued 3-step runs, worker processes with "
          f"concurrency {args.concurrency} each, {os.cpu_count()} cores\n")
    print(f"{'workers':>7} {'steady runs/s':>14} {'wall runs/s':>12} {'first start':>12}"
          f" {'wall':>8} {'steady':>8}")
    for workers, wall_rate, steady_rate, first, wall, steady in rows:
        print(f"{workers:>7} {steady_rate:>14.0f} {wall_rate:>12.0f} {first:>10.2f} s"
              f" {wall:>6.2f} s {steady:>6.2f} s")
    by_workers = {row[0]: row[2] for row in rows}
    if 4 in by_workers:
        print(f"\n4 workers: {by_workers[4]:.0f} runs/s steady (target ≥ 600) = "
              f"{by_workers[4] / PEER_RUNS_PER_S:.1f}x DBOS's ~{PEER_RUNS_PER_S} runs/s "
              "(sequential, one process, same machine type)")
    print(f"\nsubmit-to-start latency (started_at - created_at), {args.latency_runs} runs "
          "submitted ~20 ms apart to idle workers\n")
    print(f"{'store':<12} {'workers':>7} {'p50':>9} {'p99':>9} {'max':>9}")
    for store, workers, (p50, p99, worst) in (("PostgreSQL", 4, pg), ("SQLite", 1, lite)):
        print(f"{store:<12} {workers:>7} {p50:>6.1f} ms {p99:>6.1f} ms {worst:>6.1f} ms")
    print("\ntarget: p50 ≤ 20 ms on PostgreSQL")
    for problem in problems:
        print(f"\nPROBLEM {problem}")


if __name__ == "__main__":
    main()
