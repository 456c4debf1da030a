"""What one Prometheus scrape costs against a large store: ``Ledger.metrics()`` (every
aggregate, one snapshot) and the whole ``/metrics`` text, at N runs, on SQLite and
PostgreSQL.

Bulk-loads N runs of 10 steps (the mix of ``scale.py``: 85% completed, 10% failed at a
random step, 3% cancelled, 2% running; 10 workflows, 20 owners, over 30 days), all
submitted to the ``default`` queue, runs ``ANALYZE``, then times (median of 5 after a
warm-up, no cache: each call reads the database):

- ``ledger.metrics()`` for every owner (what an admin token's scrape reads),
- the same for one owner (an owner's token),
- the whole text exposition through the prometheus_client collector (``max_age=0``),

and prints each statement's query plan (``--explain``), to check what is scanned and
which indexes are used.

    .venv/bin/python bench/metrics.py [--runs 100000] [--backends sqlite postgresql] [--explain]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import text

import flowledger as fl
from flowledger.metrics import QUEUE_WAIT_BUCKETS, RUN_BUCKETS, STEP_BUCKETS
from flowledger.prometheus import exposition, registry_for
from flowledger.store.statements import metrics as metrics_sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the bench package is importable
from bench.scale import synthetic_batches  # noqa: E402


def fill(ledger: fl.Ledger, runs: int) -> int:
    steps = 0
    for run_rows, step_rows in synthetic_batches(runs):
        for row in run_rows:
            row["queue"] = "default"
        ledger.store.load_records(run_rows, step_rows)
        steps += len(step_rows)
    return steps


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median milliseconds of ``repeat`` calls (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _micros(bounds: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(round(b * 1_000_000) for b in bounds)


def plans(ledger: fl.Ledger) -> list[str]:
    """Each metrics statement (every owner's) with its query plan."""
    backend = ledger.store.backend
    statements = {
        "runs": metrics_sql.run_figures(_micros(RUN_BUCKETS), False),
        "steps": metrics_sql.step_figures(_micros(STEP_BUCKETS), False),
        "queue waits": metrics_sql.queue_waits(_micros(QUEUE_WAIT_BUCKETS), False),
        "queue depths": metrics_sql.queue_depths(False),
        "llm usage": metrics_sql.llm_usage(False),
        "webhooks": metrics_sql.webhook_figures(False),
        "held runs": metrics_sql.HELD,
        "runs (one owner)": metrics_sql.run_figures(_micros(RUN_BUCKETS), True),
    }
    found = []
    with backend.engine.connect() as conn:
        for name, statement in statements.items():
            bound = statement.params(owner="team_4", now=0)
            sql = str(bound.compile(dialect=backend.engine.dialect,
                                    compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN QUERY PLAN " if backend.name == "sqlite" else "EXPLAIN "
            rows = conn.execute(text(prefix + sql)).all()
            # Plan nodes only: PostgreSQL spells out every bucket's CASE in group keys.
            lines = [str(row[-1])[:110] for row in rows
                     if "Group Key" not in str(row[-1]) and "Sort Key" not in str(row[-1])]
            found.append(f"-- {name}\n   " + "\n   ".join(lines))
    return found


def measure(name: str, url: str, runs: int, explain: bool) -> list[tuple[str, str, str]]:
    results: list[tuple[str, str, str]] = []
    with fl.Ledger(url, durability="normal") as ledger:
        started = time.perf_counter()
        steps = fill(ledger, runs)
        results.append((name, "fill", f"{runs:,} runs / {steps:,} steps in "
                                      f"{time.perf_counter() - started:.0f} s"))
        if ledger.store.backend.name == "postgresql":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        else:
            with ledger.store.backend.engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
        snapshot = ledger.metrics()
        assert sum(snapshot.runs.values()) == runs
        assert sum(snapshot.steps.values()) == steps
        registry = registry_for(ledger, max_age=0)
        text_size = len(exposition(registry))
        results += [
            (name, "ledger.metrics(), every owner", f"{timed(ledger.metrics):,.0f} ms"),
            (name, "ledger.metrics(), one owner",
             f"{timed(ledger.for_owner('team_4').metrics):,.0f} ms"),
            (name, "whole /metrics text (collector, no cache)",
             f"{timed(lambda: exposition(registry)):,.0f} ms ({text_size:,} bytes)"),
        ]
        if explain:
            print(f"\n{name} query plans:\n" + "\n".join(plans(ledger)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--postgres", default=os.environ.get(
        "FLOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.backends:
            rows += measure("SQLite", f"sqlite:///{tmp}/metrics.db", args.runs, args.explain)
        if "postgresql" in args.backends:
            database = f"flowledger_metrics_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            try:
                url = args.postgres.rsplit("/", 1)[0] + "/" + database
                rows += measure("PostgreSQL", url, args.runs, args.explain)
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"\n{args.runs:,} runs x 10 steps (median of 5, no cache)\n")
    for backend, label, value in rows:
        print(f"{backend:<11} {label:<44} {value}")


if __name__ == "__main__":
    main()
