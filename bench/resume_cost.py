"""Resume cost: a 1,000-step run that failed at step 999, resumed; time until it completes.

Resume replays the 998 recorded steps from the store (one read) and executes the rest,
so its cost should follow the steps left to run, not the steps already recorded. Also
times resuming at step 2 of 1,000, for contrast.

    .venv/bin/python bench/resume_cost.py [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

import psycopg

import flowledger as fl

state = {"fail_at": 0}


@fl.step()
def work(i: int) -> int:
    if i == state["fail_at"]:
        state["fail_at"] = 0  # fails once; the resume succeeds
        raise RuntimeError(f"step {i} fails")
    return i


@fl.workflow(name="bench_resume")
def long_run(n: int) -> int:
    return sum(work(i) for i in range(1, n + 1))


def resume_ms(ledger: fl.Ledger, fail_at: int, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        state["fail_at"] = fail_at
        try:
            ledger.run(long_run, 1000)
        except fl.RunFailed as failed:
            started = time.perf_counter()
            ledger.resume(failed.run_id).result()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres", default=os.environ.get(
        "FLOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            fl.Ledger(f"sqlite:///{tmp}/resume.db") as ledger:
        rows += [("SQLite FULL", at, resume_ms(ledger, at)) for at in (999, 2)]
    database = f"flowledger_resume_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        with fl.Ledger(args.postgres.rsplit("/", 1)[0] + "/" + database) as ledger:
            rows += [("PostgreSQL", at, resume_ms(ledger, at)) for at in (999, 2)]
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"{'backend':<12} {'failed at':>9} {'resume until completed':>24}")
    for backend, at, ms in rows:
        print(f"{backend:<12} {at:>9} {ms:>21.1f} ms")


if __name__ == "__main__":
    main()
