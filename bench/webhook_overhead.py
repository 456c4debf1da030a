"""Webhook outbox overhead: µs per one-step run without the outbox trigger, with it and
no subscription of the run's owner, and with one subscription (a delivery row per run).

The trigger fires once per run status change, never per step, so short runs show its
cost best. Rounds alternate the three cases; the median of ``--rounds`` is printed.
``--durability normal`` takes the disk flush out of the figures (it dwarfs them).

    .venv/bin/python bench/webhook_overhead.py [--runs 1000] [--durability normal]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time
import uuid
from typing import Any, cast

import psycopg
from sqlalchemy import text

import flowledger as fl

# The migration that creates the trigger (its module name starts with a digit).
MIGRATION: Any = importlib.import_module("flowledger.store.migrations.versions.0013_webhooks")


@fl.step()
def one(i: int) -> int:
    return i + 1


@fl.workflow(name="bench_webhook_run")
def short_run(i: int) -> int:
    return one(i)


def per_run_us(ledger: fl.Ledger, runs: int) -> float:
    started = time.perf_counter()
    for i in range(runs):
        ledger.run(short_run, i)
    return (time.perf_counter() - started) / runs * 1e6


def set_trigger(ledger: fl.Ledger, on: bool) -> None:
    """Drop the outbox trigger, and create it again when ``on`` (as migration 0013)."""
    postgres = ledger.store.dialect == "postgresql"
    with ledger.store.backend.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS flowledger_runs_webhooks"
                          + (" ON flowledger_runs" if postgres else "")))
        if not on:
            return
        conn.execute(text(MIGRATION.PG_TRIGGER if postgres else MIGRATION.SQLITE_TRIGGER))


def measure(url: str, runs: int, rounds: int, durability: str) -> dict[str, float]:
    samples: dict[str, list[float]] = {"without the trigger": [], "no subscription": [],
                                       "one subscription": []}
    with fl.Ledger(url, durability=cast(Any, durability)) as ledger:
        ledger.for_owner("someone-else").add_webhook("https://example.com/other")
        try:
            for _ in range(rounds):
                set_trigger(ledger, False)
                samples["without the trigger"].append(per_run_us(ledger, runs))
                set_trigger(ledger, True)
                samples["no subscription"].append(per_run_us(ledger, runs))
                hook = ledger.add_webhook("https://example.com/hooks")
                samples["one subscription"].append(per_run_us(ledger, runs))
                ledger.remove_webhook(hook.id)
        finally:
            set_trigger(ledger, True)
    return {case: statistics.median(values) for case, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--durability", default="full", choices=["strict", "full", "normal"])
    parser.add_argument("--postgres", default=os.environ.get(
        "FLOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = measure(f"sqlite:///{tmp}/hooks.db", args.runs, args.rounds,
                                    args.durability)
    database = f"flowledger_webhooks_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        results["PostgreSQL"] = measure(args.postgres.rsplit("/", 1)[0] + "/" + database,
                                        args.runs, args.rounds, args.durability)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"one-step runs, durability={args.durability}, median of {args.rounds} rounds "
          f"of {args.runs}")
    print(f"{'backend':<12} {'case':<22} {'µs/run':>8}")
    for backend, figures in results.items():
        for case, micros in figures.items():
            print(f"{backend:<12} {case:<22} {micros:>8.0f}")


if __name__ == "__main__":
    main()
