"""flowledger at scale: a store of N runs (10 steps each), then the operations users wait on.

Fills SQLite and PostgreSQL stores with N runs (default 1,000,000) of 10 steps, a
realistic mix of statuses, owners and workflows spread over 30 days, plus one run of
1,000 steps; then times, each as the median of several repetitions:

- the first page of ``runs(status="failed", workflow=...)``,
- a page deep in the cursor (half-way through the store), filtered and unfiltered,
- ``get()`` of the 1,000-step run, and its ``revision()`` (what a 304 reads),
- ``summaries()`` (what ``GET /runs`` and ``flowledger runs`` list): first page and
  half-way through,
- whole ``flowledger runs`` and ``flowledger inspect`` (of the 1,000-step run) processes,
  interpreter start included,
- ``stats()`` for one workflow over a day,
- ``purge`` of the oldest 10% of runs (runs/s),

and reports database bytes per step (payloads are a few bytes, so this is overhead).

    .venv/bin/python bench/scale.py [--runs 1000000] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

import flowledger as fl
from flowledger import ids
from flowledger.queries import encode_cursor
from flowledger.store import RunFilter

STEPS = 10
WORKFLOWS = [f"workflow_{i}" for i in range(10)]
OWNERS = [f"team_{i}" for i in range(20)]
STATUSES = (["completed"] * 85) + (["failed"] * 10) + (["cancelled"] * 3) + (["running"] * 2)
DAY_US = 86_400 * 1_000_000
BATCH = 10_000


@dataclass(frozen=True)
class Payloads:
    """The serialized values every synthetic run and step carries."""

    inputs: str = '{"n": 1}'
    output: str = "1"
    step_input: str | None = None
    step_output: str = "1"


def synthetic_batches(runs: int, *, steps: int = STEPS, owners: Sequence[str] = OWNERS,
                      span_days: int = 30, payloads: Payloads = Payloads()
                      ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Ready-made run and step rows, ``BATCH`` runs at a time, spread over ``span_days``
    (for ``store.load_records``); the same rows for the same arguments."""
    rng = random.Random(7)
    start = ids.now_us() - span_days * DAY_US
    for offset in range(0, runs, BATCH):
        run_rows: list[dict[str, Any]] = []
        step_rows: list[dict[str, Any]] = []
        for i in range(offset, min(offset + BATCH, runs)):
            created = start + (i * span_days * DAY_US) // runs
            # UUIDv7 from the creation time, so ids and timestamps agree as in real use.
            run_id = uuid.UUID(int=(created // 1000) << 80 | 0x7 << 76 | rng.getrandbits(76)
                               & ((1 << 76) - 1) | (0b10 << 62))
            status = rng.choice(STATUSES)
            done = status != "running"
            failed_at = rng.randrange(1, steps + 1) if status == "failed" else None
            run_rows.append({
                "id": run_id, "workflow": rng.choice(WORKFLOWS), "version": "1",
                "entrypoint": "app.flows:flow", "owner": rng.choice(owners), "status": status,
                "serializer": "json", "inputs": payloads.inputs,
                "output": payloads.output if status == "completed" else None,
                "error": '{"type": "ValueError", "message": "x", "traceback": ""}'
                if status == "failed" else None,
                "created_at": created, "started_at": created,
                "completed_at": created + 40_000 if done else None,
                "total_steps": steps if done else 0,
                "completed_steps": (failed_at - 1 if failed_at else steps) if done else 0,
                "failed_steps": 1 if failed_at else 0, "skipped_steps": 0,
                "recovery_attempts": 0, "lease_token": "0123456789abcdef",
            })
            for position in range(1, (failed_at or steps) + 1):
                began = created + position * 3_000
                step_rows.append({
                    "run_id": run_id, "position": position, "name": f"step_{position}",
                    "status": "failed" if position == failed_at else "completed",
                    "attempts": 1, "input": payloads.step_input,
                    "output": None if position == failed_at else payloads.step_output,
                    "error": None, "started_at": began, "completed_at": began + 2_500,
                    "child_run_id": None,
                })
        yield run_rows, step_rows


def fill(ledger: fl.Ledger, runs: int, span_days: int = 30) -> tuple[int, str, str]:
    """Bulk-load ``runs`` runs; returns (steps written, id of the 1,000-step run, a run id
    half-way through the store)."""
    step_count = 0
    middle = ""
    loaded = 0
    for run_rows, step_rows in synthetic_batches(runs, span_days=span_days):
        if loaded <= runs // 2 < loaded + len(run_rows):
            middle = str(run_rows[runs // 2 - loaded]["id"])
        loaded += len(run_rows)
        ledger.store.load_records(run_rows, step_rows)
        step_count += len(step_rows)
    big = big_run(ledger)
    return step_count + 1000, big, middle


@fl.step()
def tiny(i: int) -> int:
    return i


@fl.workflow(name="scale_big")
def thousand(n: int) -> int:
    return sum(tiny(i) for i in range(n))


def big_run(ledger: fl.Ledger) -> str:
    handle = ledger.start(thousand, 1000)
    handle.result()
    return handle.id


def timed(fn: Callable[[], object], repeat: int = 7) -> float:
    """Median milliseconds of ``repeat`` calls (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _cli(url: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "flowledger", "--db", url, *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "COLUMNS": "160"})


def database_bytes(ledger: fl.Ledger, url: str) -> int:
    backend = ledger.store.backend
    if backend.name == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                           "WHERE c.relname LIKE 'flowledger_%' AND c.relkind = 'r'").fetchone()
    return int(row[0]) if row and row[0] else 0


def measure(name: str, url: str, runs: int) -> list[tuple[str, str, str, str]]:
    results: list[tuple[str, str, str]] = []
    with fl.Ledger(url, durability="normal") as ledger:
        started = time.perf_counter()
        steps, big, middle = fill(ledger, runs)
        load = time.perf_counter() - started
        results.append(("fill", f"{runs:,} runs / {steps:,} steps",
                        f"{load:.0f} s ({steps / load:,.0f} steps/s)"))
        if ledger.store.backend.name == "postgresql":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        else:
            ledger.store.backend._hot.execute("ANALYZE")  # type: ignore[attr-defined]
        size = database_bytes(ledger, url)
        results.append(("database size", f"{size / 2**20:,.0f} MiB",
                        f"{size / steps:.0f} bytes per step (target ≤ 400)"))
        cursor = encode_cursor(uuid.UUID(middle), RunFilter())
        failed_cursor = encode_cursor(uuid.UUID(middle),
                                      RunFilter(status=["failed"], workflow="workflow_3"))
        checks: list[tuple[str, Callable[[], object], str]] = [
            ("runs(status=failed, workflow=…) first page",
             lambda: ledger.runs(status="failed", workflow="workflow_3"), "≤ 10 ms"),
            ("runs() page half-way through (cursor)",
             lambda: ledger.runs(cursor=cursor), "≤ 10 ms"),
            ("runs(status=failed, workflow=…) half-way",
             lambda: ledger.runs(status="failed", workflow="workflow_3",
                                 cursor=failed_cursor),
             "≤ 10 ms"),
            ("runs(owner=…, tag-less) first page",
             lambda: ledger.runs(owner="team_4"), "≤ 10 ms"),
            ("get() of a 1,000-step run", lambda: ledger.get(big), "≤ 20 ms"),
            ("revision() of the 1,000-step run", lambda: ledger.revision(big), "(a 304)"),
            ("summaries() first page", ledger.summaries, "(GET /runs)"),
            ("summaries() half-way through (cursor)",
             lambda: ledger.summaries(cursor=cursor), "(GET /runs?cursor=)"),
            ("flowledger runs (whole process)",
             lambda: _cli(url, "runs"), "wall time, interpreter start included"),
            ("flowledger inspect <1,000-step run> (whole process)",
             lambda: _cli(url, "inspect", big), "wall time, interpreter start included"),
            ("stats(workflow=…) over a day",
             lambda: ledger.stats(workflow="workflow_3", since=timedelta(days=1)), "≤ 200 ms"),
        ]
        for label, fn, target in checks:
            results.append((label, f"{timed(fn):.2f} ms", target))
        before = len(ledger.runs(until=timedelta(days=27), limit=1000))
        started = time.perf_counter()
        report = ledger.purge(timedelta(days=27))  # the oldest ~10% (of 30 days)
        elapsed = time.perf_counter() - started
        results.append(("purge oldest 10%", f"{report.runs:,} runs, {report.steps:,} steps",
                        f"{report.runs / elapsed:,.0f} runs/s (target ≥ 20,000)"))
        assert before > 0 and report.runs > 0
    return [(name, *row) for row in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--postgres", default=os.environ.get(
        "FLOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.backends:
            rows += measure("SQLite", f"sqlite:///{tmp}/scale.db", args.runs)
        if "postgresql" in args.backends:
            database = f"flowledger_scale_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            try:
                url = args.postgres.rsplit("/", 1)[0] + "/" + database
                rows += measure("PostgreSQL", url, args.runs)
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"\n{args.runs:,} runs x {STEPS} steps\n")
    print(f"{'backend':<11} {'measure':<46} {'result':<28} target / note")
    for backend, label, value, note in rows:
        print(f"{backend:<11} {label:<46} {value:<28} {note}")


if __name__ == "__main__":
    main()
