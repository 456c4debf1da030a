"""How promptly suspended runs come back: an event sent to a waiting run until its wait
completes, and a suspended sleep's end until it completes — from the recorded times.

    .venv/bin/python bench/waits.py [--runs 100] [--postgres URL]

A worker (in this process, a thread, ``suspend_after=0.1``) executes runs that suspend
at ``fl.wait_for_event("go")`` or at ``fl.sleep(0.5)``. Events are sent, and sleeping
runs submitted, one at a time, each once the previous run has completed, so every
figure is a lone wake-up, not a queue. Event latency is the wait step's
``completed_at`` minus the event's ``sent_at``; sleep lateness is the sleep step's
``completed_at`` minus its recorded ``wake_at``. On SQLite an idle worker polls (every
50 ms, and exactly at the next wake time); on PostgreSQL an event wakes it at once with
NOTIFY. Also: what suspending costs a run, as the extra time of a run that suspends at
``fl.sleep(0.15)`` over one whose worker blocks through the same sleep.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

import flowledger as fl

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@fl.workflow(name="bench_wait_for_go")
def wait_for_go() -> object:
    return fl.wait_for_event("go")


@fl.workflow(name="bench_nap")
def nap(seconds: float) -> None:
    fl.sleep(seconds)


@contextmanager
def worker(url: str, suspend_after: float) -> Iterator[None]:
    running = fl.Worker(url, concurrency=16, suspend_after=suspend_after, webhooks=False)
    thread = threading.Thread(target=running.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        yield
    finally:
        running.stop()
        thread.join()


def until(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's runs did not get there")
        time.sleep(0.002)


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered):6.1f} ms   p99 {p99:6.1f} ms   "
            f"max {ordered[-1]:6.1f} ms")


def measure(url: str, runs: int) -> None:
    with fl.Ledger(url) as ledger, worker(url, 0.1):
        ids = [ledger.submit(wait_for_go).id for _ in range(runs)]
        until(lambda: len(ledger.runs(status="waiting", limit=1000)) == runs)
        latencies = []
        for run_id in ids:
            sent = ledger.send_event(run_id, "go", 1)
            until(lambda run_id=run_id: ledger.handle(run_id).done())  # type: ignore[misc]
            step = ledger.get(run_id).steps[0]
            assert step.completed_at is not None
            latencies.append((step.completed_at - sent.sent_at).total_seconds() * 1000)
        print(f"  event sent → wait completed   {ms(latencies)}")

        sleepers = []
        for _ in range(20):  # one at a time: lone wake-ups, not a crowd waking together
            sleepers.append(ledger.submit(nap, 0.5).id)
            ledger.handle(sleepers[-1]).result(timeout=120)
        late = []
        for run_id in sleepers:
            step = ledger.get(run_id).steps[0]
            assert step.completed_at is not None
            wake_at = step.input["wake_at"] / 1_000_000
            late.append((step.completed_at.timestamp() - wake_at) * 1000)
        print(f"  sleep's end → sleep completed {ms(late)}   ({len(sleepers)} runs of 0.5 s)")
    for suspend_after, label in ((0.05, "suspending"), (10.0, "blocking")):
        with fl.Ledger(url) as ledger, worker(url, suspend_after):
            spans = []
            for _ in range(20):
                run = ledger.get(ledger.submit(nap, 0.15).id)
                ledger.handle(run.id).result(timeout=60)
                done = ledger.get(run.id)
                assert done.completed_at is not None and done.started_at is not None
                spans.append((done.completed_at - done.started_at).total_seconds() * 1000
                             - 150)
            print(f"  a 150 ms sleep, {label:10} run time beyond it: {ms(spans)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--postgres", default=ADMIN.rsplit("/", 1)[0],
                        help="a PostgreSQL server (a fresh database is made and dropped)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(f"SQLite ({options.runs} runs)")
        measure(f"sqlite:///{Path(folder) / 'waits.db'}", options.runs)
    name = f"flowledger_bench_waits_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        print(f"PostgreSQL ({options.runs} runs)")
        measure(f"{options.postgres}/{name}", options.runs)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
