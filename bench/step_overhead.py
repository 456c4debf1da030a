"""Per-step overhead: a workflow of N trivial sequential steps, in µs per step.

Runs on SQLite (durability full and normal), on PostgreSQL, and as plain function calls
(the baseline), and measures the raw cost of one commit on each store for reference.
Prints the median of several repetitions.

    .venv/bin/python bench/step_overhead.py [--steps 1000] [--repeat 5]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--telemetry]
        [--encryption] [--redact]

``--encryption`` also measures encryption at rest: the same workflows with and without a
keyring (AES-256-GCM), alternated in one process, on SQLite (normal and full) and on
PostgreSQL, with trivial steps and with steps returning 1 KiB of text.

``--telemetry`` also measures tracing's cost: the same workflow on SQLite (durability
normal, so fsync noise does not hide it) with telemetry off and on, alternated in one
process; spans go through the real batching processor to an exporter that drops them.

``--redact`` measures redaction at record time the same way (SQLite, durability normal,
alternated): steps that take and return a small record, with redaction off, with key
names only (``password``, ``api_key``: nothing matches, the text is not parsed), with
value patterns too (every value is parsed and scanned), and with a key that matches in
every output (re-serialized, and the step flagged).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

import flowledger as fl
from flowledger.store import Durability


@fl.step()
def trivial(i: int) -> int:
    return i + 1


@fl.workflow(name="bench_steps")
def many_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += trivial(i)
    return total


step_log = logging.getLogger("bench.steps")
step_log.setLevel(logging.INFO)
step_log.propagate = False  # records are made (and captured) but printed nowhere


@fl.step()
def logs_lines(i: int, lines: int) -> int:
    for line in range(lines):
        step_log.info("step %d line %d", i, line)
    return i + 1


@fl.workflow(name="bench_logging_steps")
def many_logging_steps(n: int, lines: int) -> int:
    total = 0
    for i in range(n):
        total += logs_lines(i, lines)
    return total


@fl.step()
def record_step(i: int, user: str) -> dict[str, Any]:
    return {"id": i, "user": user, "note": f"order {i} for {user}", "tags": ["a", "b"]}


@fl.step()
def secret_step(i: int) -> dict[str, Any]:
    return {"id": i, "password": "hunter2", "note": f"order {i}"}


@fl.workflow(name="bench_record_steps")
def many_record_steps(n: int, secret: bool) -> int:
    total = 0
    for i in range(n):
        total += (secret_step(i) if secret else record_step(i, "ana"))["id"]
    return total


def plain(n: int) -> int:
    total = 0
    for i in range(n):
        total += trivial.__wrapped__(i)  # type: ignore[attr-defined]
    return total


def measure(fn: Callable[[], object], steps: int, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(samples)


def raw_sqlite_commit(path: Path, synchronous: str, n: int = 2000) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS t (i INTEGER)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    elapsed = (time.perf_counter() - start) / n * 1e6
    conn.close()
    return elapsed


def raw_pg_commit(conninfo: str, n: int = 1000) -> float:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_t (i INTEGER)")
        start = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO bench_t VALUES (%s)", (i,))
        return (time.perf_counter() - start) / n * 1e6


class DroppingExporter:
    """A span exporter that accepts and drops everything (what is measured is flowledger
    building spans and the processor taking them, not a network)."""

    def export(self, spans: object) -> object:
        from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: PLC0415

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@fl.step()
def kilobyte(i: int) -> str:
    return f"{i:08d}" * 128


@fl.workflow(name="bench_kilobyte_steps")
def kilobyte_steps(n: int) -> int:
    return sum(len(kilobyte(i)) for i in range(n))


def encryption_cost(url: str, n: int, repeat: int, durability: Durability,
                    workflow: Any) -> tuple[float, float]:
    """µs per step without and with a keyring on one database, alternated."""
    keys = fl.Keyring.parse(fl.Keyring.generate("bench"))
    with fl.Ledger(url, durability=durability, telemetry=False) as plain_ledger, \
            fl.Ledger(url, durability=durability, telemetry=False,
                      encryption=keys) as sealed:
        return alternated(plain_ledger, sealed, workflow, n, repeat)


def alternated(first: fl.Ledger, second: fl.Ledger, workflow: Any, n: int,
               repeat: int) -> tuple[float, float]:
    """µs per step of ``workflow`` on two Ledgers, measured alternately (medians)."""
    one: list[float] = []
    two: list[float] = []
    for ledger in (first, second):
        ledger.run(workflow, 10)  # warm up
    for _ in range(repeat):
        one.append(measure(lambda: first.run(workflow, n), n, 1))
        two.append(measure(lambda: second.run(workflow, n), n, 1))
    return statistics.median(one), statistics.median(two)


def encryption_figures(postgres: str, n: int, repeat: int) -> None:
    print(f"\nencryption at rest: {n} sequential steps, alternated, median of {repeat}\n")
    print(f"{'configuration':<46} {'off':>9} {'on':>9}   cost")
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[tuple[str, str, Durability]] = [
            (f"SQLite durability={d}", f"sqlite:///{tmp}/enc-{d}.db", d)
            for d in ("normal", "full")]
        database = f"flowledger_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        stores.append(("PostgreSQL durability=full",
                       postgres.rsplit("/", 1)[0] + "/" + database, "full"))
        try:
            for label, url, durability in stores:
                for kind, workflow in (("trivial", many_steps), ("1 KiB out", kilobyte_steps)):
                    off, on = encryption_cost(url, n, repeat, durability, workflow)
                    print(f"{label + ', ' + kind:<46} {off:>9.1f} {on:>9.1f}   "
                          f"{on - off:+.1f} µs/step ({(on - off) / off:+.1%})")
        finally:
            with psycopg.connect(postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def telemetry_cost(n: int, repeat: int) -> tuple[float, float]:
    """µs per step with telemetry off and on, measured alternately in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/telemetry.db"
        with fl.Ledger(url, durability="normal", telemetry=False) as plain_ledger, \
                fl.Ledger(url, durability="normal",
                          telemetry=fl.Telemetry(exporter=DroppingExporter())) as traced:
            return alternated(plain_ledger, traced, many_steps, n, repeat)


def redaction_cost(n: int, repeat: int) -> list[tuple[str, float]]:
    """µs per step of record steps with redaction off and in three configurations,
    measured alternately in this process."""
    keys = ["password", "api_key"]
    configs: list[tuple[str, Any, bool]] = [
        ("redaction off", None, False),
        ("keys (none matches)", keys, False),
        ("keys + bearer/card value patterns", fl.Redact(
            keys=keys, values=[fl.redact.BEARER_TOKEN, fl.redact.CARD_NUMBER]), False),
        ("keys, a key matches in every output", keys, True),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    with tempfile.TemporaryDirectory() as tmp:
        ledgers = [(name, fl.Ledger(f"sqlite:///{tmp}/redact-{index}.db",
                                    durability="normal", telemetry=False, redact=option),
                    secret)
                   for index, (name, option, secret) in enumerate(configs)]
        try:
            for _, ledger, secret in ledgers:
                ledger.run(many_record_steps, 10, secret)  # warm up
            for _ in range(repeat):
                for name, ledger, secret in ledgers:
                    samples[name].append(measure(
                        lambda lg=ledger, s=secret: lg.run(many_record_steps, n, s),  # type: ignore[misc]
                        n, 1))
        finally:
            for _, ledger, _ in ledgers:
                ledger.close()
    return [(name, statistics.median(values)) for name, values in samples.items()]


def redaction_isolated(count: int = 20_000) -> list[tuple[str, float]]:
    """µs per step of redaction alone (no store, one thread): a record step's input and
    output texts redacted in each configuration of ``redaction_cost``."""
    from flowledger.redact import redactor_of  # noqa: PLC0415 (bench-only internals)

    keys = ["password", "api_key"]
    record = (json.dumps({"i": 5, "user": "ana"}),
              json.dumps({"id": 5, "user": "ana", "note": "order 5 for ana", "tags": ["a", "b"]}))
    secret = (json.dumps({"i": 5}), json.dumps({"id": 5, "password": "hunter2",
                                               "note": "order 5"}))
    configs: list[tuple[str, Any, tuple[str, str]]] = [
        ("keys (none matches)", keys, record),
        ("keys + bearer/card value patterns", fl.Redact(
            keys=keys, values=[fl.redact.BEARER_TOKEN, fl.redact.CARD_NUMBER]), record),
        ("keys, a key matches in every output", keys, secret)]
    figures = []
    for name, option, texts in configs:
        redactor = redactor_of(option)
        assert redactor is not None
        start = time.perf_counter()
        for _ in range(count):
            for text in texts:
                redactor.json_text(text)
        figures.append((name, (time.perf_counter() - start) / count * 1e6))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--telemetry", action="store_true",
                        help="also measure the per-step cost of OpenTelemetry tracing")
    parser.add_argument("--encryption", action="store_true",
                        help="also measure the per-step cost of encryption at rest")
    parser.add_argument("--redact", action="store_true",
                        help="also measure the per-step cost of redaction at record time")
    parser.add_argument("--postgres", default=os.environ.get(
        "FLOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    n, repeat = args.steps, args.repeat

    rows: list[tuple[str, float, str]] = []
    rows.append(("plain function calls (baseline)",
                 measure(lambda: plain(n), n, repeat), "-"))
    with tempfile.TemporaryDirectory() as tmp:
        for durability, pragma in (("strict", "FULL"), ("full", "FULL"),
                                   ("normal", "NORMAL")):
            with fl.Ledger(f"sqlite:///{tmp}/{durability}.db",
                           durability=durability) as ledger:  # type: ignore[arg-type]
                ledger.run(many_steps, 10)  # warm up
                per_step = measure(lambda lg=ledger: lg.run(many_steps, n), n, repeat)  # type: ignore[misc]
            raw = raw_sqlite_commit(Path(tmp) / f"raw-{durability}.db", pragma)
            rows.append((f"flowledger SQLite durability={durability}", per_step,
                         f"{raw:.0f} µs ({pragma})"))

    database = f"flowledger_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = args.postgres.rsplit("/", 1)[0] + "/" + database
    try:
        raw = raw_pg_commit(url)
        for durability in ("strict", "full"):
            with fl.Ledger(url, durability=durability) as ledger:  # type: ignore[arg-type]
                ledger.run(many_steps, 10)
                per_step = measure(lambda lg=ledger: lg.run(many_steps, n), n, repeat)  # type: ignore[misc]
            rows.append((f"flowledger PostgreSQL durability={durability}", per_step,
                         f"{raw:.0f} µs (synchronous_commit=on)"))
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    print(f"\n{n} sequential trivial steps per workflow, median of {repeat} runs\n")
    print(f"{'configuration':<46} {'µs/step':>9}   raw commit on this store")
    for name, value, raw_text in rows:
        print(f"{name:<46} {value:>9.1f}   {raw_text}")
    if args.telemetry:
        off, on = telemetry_cost(n, max(repeat, 5))
        print(f"\ntelemetry, SQLite durability=normal, alternated, median of {max(repeat, 5)}:")
        print(f"{'telemetry off':<46} {off:>9.1f}")
        print(f"{'telemetry on (spans built, batched, dropped)':<46} {on:>9.1f}   "
              f"+{on - off:.1f} µs/step")
    if args.encryption:
        encryption_figures(args.postgres, n, max(repeat, 5))
    if args.redact:
        figures = redaction_cost(n, max(repeat, 5))
        off = figures[0][1]
        print(f"\nredaction, record steps, SQLite durability=normal, alternated, median of "
              f"{max(repeat, 5)}:")
        for name, value in figures:
            print(f"{name:<46} {value:>9.1f}   {value - off:+.1f} µs/step")
        print("\nredaction alone (no store), a step's input and output texts:")
        for name, value in redaction_isolated():
            print(f"{name:<46} {value:>9.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        step_logs_figures(Path(tmp), n, repeat)


def step_logs_figures(tmp: Path, n: int, repeat: int) -> None:
    """Step log capture on and off (SQLite, durability=full): per step, and the commit of
    one step that logs 100,000 lines (kept: the first 1,000, at most 256 KiB)."""
    print(f"\nstep logs: {n} sequential steps, SQLite durability=full, median of {repeat}\n")
    print(f"{'configuration':<46} {'µs/step':>9}   vs capture off")
    for lines in (0, 10):
        figures = {}
        for capture in (False, True):
            with fl.Ledger(f"sqlite:///{tmp}/logs-{lines}-{capture}.db",
                           capture_logs=capture) as ledger:
                ledger.run(many_logging_steps, 10, lines)  # warm up
                figures[capture] = measure(
                    lambda lg=ledger, k=lines: lg.run(many_logging_steps, n, k),  # type: ignore[misc]
                    n, repeat)
        for capture in (False, True):
            label = f"{lines} log lines per step, capture {'on' if capture else 'off'}"
            print(f"{label:<46} {figures[capture]:>9.1f}   "
                  f"{figures[capture] / figures[False]:.2f}x")
    print(f"\none step logging 100,000 lines, median of {repeat}\n")
    print(f"{'configuration':<46} {'step ms':>9} {'commit ms':>10} {'stored KiB':>11}")
    for capture in (False, True):
        with fl.Ledger(f"sqlite:///{tmp}/flood-{capture}.db", capture_logs=capture) as ledger:
            total, commit, stored = flood(ledger, repeat)
        label = f"capture {'on' if capture else 'off'}"
        print(f"{label:<46} {total * 1e3:>9.1f} {commit * 1e3:>10.2f} {stored / 1024:>11.1f}")


def flood(ledger: fl.Ledger, repeat: int) -> tuple[float, float, int]:
    """Median seconds of a run whose one step logs 100,000 lines, median seconds of that
    step's commit (its result, with the logs it kept), and the bytes of logs kept."""
    commits: list[float] = []
    finish = ledger.store.finish_step

    def timed(*args: Any, **kwargs: Any) -> bool:
        start = time.perf_counter()
        try:
            return finish(*args, **kwargs)
        finally:
            commits.append(time.perf_counter() - start)

    ledger.store.finish_step = timed  # type: ignore[method-assign]
    totals = []
    run_id = ""
    for _ in range(repeat):
        start = time.perf_counter()
        handle = ledger.start(many_logging_steps, 1, 100_000)
        handle.result()
        totals.append(time.perf_counter() - start)
        run_id = handle.id
    stored = sum(len(json.dumps([e.to_dict() for e in a.records]))
                 for a in ledger.logs(run_id))
    return statistics.median(totals), statistics.median(commits), stored


if __name__ == "__main__":
    main()
