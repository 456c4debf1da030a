"""Webhook outbox overhead, without the outbox trigger, with it and no subscription of
the run's owner, and with one subscription (a delivery row per run end):

- µs per statement that ends a run (``UPDATE … SET status = 'completed'``), 1,000
  distinct runs in a transaction rolled back: the trigger's own cost, without commits;
- µs per one-step run end to end (``ledger.run``), where commits dominate.

The trigger fires once per run status change, never per step. Rounds alternate the
cases; the median of ``--rounds`` is printed. ``--durability normal`` takes most of the
disk flush out of the end-to-end figures.

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


CASES = ("without the trigger", "no subscription", "one subscription")


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


def finishing_update_us(ledger: fl.Ledger, run_ids: list[str], case: str) -> float:
    """µs per run-ending UPDATE with the trigger in ``case``, rolled back afterwards."""
    postgres = ledger.store.dialect == "postgresql"
    bound = run_ids if postgres else [run_id.replace("-", "") for run_id in run_ids]
    with ledger.store.backend.engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(text("DROP TRIGGER IF EXISTS flowledger_runs_webhooks"
                          + (" ON flowledger_runs" if postgres else "")))
        if case != "without the trigger":
            conn.execute(text(MIGRATION.PG_TRIGGER if postgres else MIGRATION.SQLITE_TRIGGER))
        if case == "one subscription":
            conn.execute(text("INSERT INTO flowledger_webhooks VALUES ('wh_bench', 'default', "
                              "'https://example.com/', '[\"run.completed\"]', 'whsec_x', "
                              "1, 0)"))
        conn.execute(text("UPDATE flowledger_runs SET status = 'running'"))
        finish = text("UPDATE flowledger_runs SET status = 'completed' WHERE id = :id")
        started = time.perf_counter()
        for run_id in bound:
            conn.execute(finish, {"id": run_id})
        elapsed = time.perf_counter() - started
        transaction.rollback()
    return elapsed / len(run_ids) * 1e6


def measure(url: str, runs: int, rounds: int, durability: str) -> dict[str, float]:
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    samples.update({f"{case}, per UPDATE": [] for case in CASES})
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
            run_ids = [row.id for row in ledger.runs(limit=1000).runs]
            for _ in range(rounds):
                for case in CASES:
                    samples[f"{case}, per UPDATE"].append(
                        finishing_update_us(ledger, run_ids, case))
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
    print(f"{'backend':<12} {'case':<22} {'µs per run':>11} {'µs per run-ending UPDATE':>25}")
    for backend, figures in results.items():
        for case in CASES:
            print(f"{backend:<12} {case:<22} {figures[case]:>11.0f} "
                  f"{figures[f'{case}, per UPDATE']:>25.1f}")


if __name__ == "__main__":
    main()
