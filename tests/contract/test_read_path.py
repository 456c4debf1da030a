"""The read path: ``Ledger.get`` reads a run whole in a fixed, small number of statements
and round trips whatever its size; ``Ledger.revision`` changes with every kind of write
that changes what ``get`` returns, and only then; previews keep large payloads out.

Statements are counted on the wire: SQLite's trace callback, libpq's protocol trace."""

from __future__ import annotations

import contextlib
import re
import tempfile
import tracemalloc
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

import flowledger as fl
from tests.helpers import checkpoints


@fl.step(retries=1, backoff=0)
def flaky(state: dict[str, int], i: int) -> int:
    state[str(i)] = state.get(str(i), 0) + 1
    if state[str(i)] == 1 and i % 3 == 0:
        raise ValueError("first attempt fails")
    fl.record_usage("gpt-4o-mini", input_tokens=10, output_tokens=2)
    return i


@fl.workflow(name="read-child")
def child(n: int) -> int:
    return flaky({}, n)


@fl.workflow(name="read-wide")
def wide(n: int) -> int:
    state: dict[str, int] = {}
    total = sum(flaky(state, i) for i in range(n))
    fl.context.set("total", total)
    fl.artifacts.save("notes.txt", b"notes")
    return total + child(n) + child(n + 1)


class Wire:
    """The statements and round trips a store's read connections send."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.round_trips = 0

    @classmethod
    @contextlib.contextmanager
    def watching(cls, ledger: fl.Ledger) -> Iterator[Wire]:
        wire = cls()
        engine = ledger.store.backend.engine
        engine.dispose()  # new connections, so each is watched from its first statement
        postgres = ledger.store.dialect == "postgresql"
        traces: list[Any] = []

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            if postgres:
                trace = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed below)
                traces.append(trace)
                pgconn = getattr(dbapi_conn, "pgconn", None) or \
                    dbapi_conn.driver_connection.pgconn
                pgconn.trace(trace.fileno())
                pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            else:
                dbapi_conn.set_trace_callback(wire.statements.append)

        event.listen(engine, "connect", on_connect)
        try:
            yield wire
        finally:
            event.remove(engine, "connect", on_connect)
            engine.dispose()
            for trace in traces:
                trace.seek(0)
                for line in trace.read().splitlines():
                    kind = line.split("\t")
                    if len(kind) > 2 and kind[0] == "F":
                        if kind[2] == "Execute":
                            wire.statements.append("execute")
                        if kind[2] in ("Sync", "Query"):  # each waits for the server
                            wire.round_trips += 1
                trace.close()

    def queries(self) -> int:
        """Statements other than transaction control (BEGIN, COMMIT) and pings."""
        control = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", ";")
        return sum(1 for s in self.statements if not s.strip().upper().startswith(control))


def _read(ledger: fl.Ledger, run_id: str) -> Wire:
    with Wire.watching(ledger) as wire:
        run = ledger.get(run_id)
    assert run.steps
    return wire


def test_get_reads_a_run_in_four_statements_whatever_its_size(
        ledger: fl.Ledger) -> None:
    small = ledger.start(wide, 2)
    large = ledger.start(wide, 150)
    small.result()
    large.result()
    run = ledger.get(large.id)
    assert len(run.steps) == 152 and run.usage is not None and run.usage.calls == 152
    assert any(len(step.attempt_history) == 2 for step in run.steps)
    assert run.context == {"total": sum(range(150))} and len(run.artifacts) == 1

    for run_id in (small.id, large.id):
        wire = _read(ledger, run_id)
        if ledger.store.dialect == "postgresql":
            # BEGIN, four reads and COMMIT pipelined in one round trip; plus the pool's
            # ping when a connection is checked out
            assert len(wire.statements) == 6, wire.statements
            assert wire.round_trips <= 2, wire.round_trips
        else:
            assert wire.queries() == 4, wire.statements
            assert len(wire.statements) <= 6, wire.statements


def test_the_revision_changes_with_every_write_get_would_show(ledger: fl.Ledger) -> None:
    walk = checkpoints.fresh()
    seen: list[str] = []
    handle = ledger.start(checkpoints.flow)

    def look(name: str) -> None:
        revision = ledger.revision(handle.id)
        assert revision not in seen, f"{name}: revision unchanged ({revision})"
        assert ledger.revision(handle.id) == revision  # nothing wrote meanwhile
        assert ledger.get(handle.id).revision == revision
        seen.append(revision)

    walk.walk(look)
    assert handle.result(timeout=60) == "done"
    final = ledger.revision(handle.id)
    assert final not in seen  # the final status
    assert ledger.get(handle.id).revision == final

    # cancelling and resuming a queued run change it too; reading it does not
    queued = ledger.submit(checkpoints.flow)
    before = ledger.revision(queued.id)
    ledger.get(queued.id)
    assert ledger.revision(queued.id) == before
    ledger.cancel(queued.id)
    cancelled = ledger.revision(queued.id)
    assert cancelled != before
    ledger.resume(queued.id, queue="default")
    assert ledger.revision(queued.id) not in (before, cancelled)


def test_previews_keep_large_payloads_out_of_a_run_read(ledger: fl.Ledger) -> None:
    @fl.step
    def big(size: int) -> str:
        return "x" * size

    @fl.workflow(name="read-preview")
    def flow(size: int) -> str:
        return big(size)

    handle = ledger.start(flow, 1024 * 1024)
    handle.result()
    run = ledger.get(handle.id, preview=1000)
    step = run.steps[0]
    assert step.output_truncated and not step.input_truncated
    assert isinstance(step.output, str) and len(step.output) == 1000
    assert step.output.startswith('"xxx')
    assert step.input == {"size": 1024 * 1024}
    whole = ledger.step(handle.id, 1)
    assert whole.output == "x" * 1024 * 1024 and not whole.output_truncated
    assert ledger.get(handle.id).steps[0].output == whole.output  # no preview asked
    with pytest.raises(fl.ConfigurationError, match="preview"):
        ledger.get(handle.id, preview=0)


@fl.workflow(name="read-payload")
def payload(blob: str) -> int:
    return len(blob)


def test_a_listing_reads_no_payload_whatever_its_size(ledger: fl.Ledger) -> None:
    blob = "x" * (512 * 1024)
    for _ in range(20):
        ledger.run(payload, blob)
    with Wire.watching(ledger) as wire:
        ledger.summaries(limit=50)
    if ledger.store.dialect == "sqlite":  # the wire shows the SQL: no payload column in it
        [listing] = [s for s in wire.statements if "FROM flowledger_runs" in s]
        assert not re.search(r"\bflowledger_runs\.(inputs|output)\b", listing), listing
        # and SQLite, which reads a row's columns in order, stops before the payloads:
        # every column a listing reads comes before them (columns added since may follow)
        with ledger.store.backend.engine.connect() as conn:
            columns = [row[1] for row in conn.exec_driver_sql(
                "PRAGMA table_info(flowledger_runs)")]
        read = [name for name in columns
                if re.search(rf"\bflowledger_runs\.{name}\b", listing)]
        assert read and max(map(columns.index, read)) < columns.index("inputs") \
            < columns.index("output"), (columns, read)
    else:
        assert len(wire.statements) == 3 and wire.round_trips <= 2  # BEGIN, page, COMMIT
    tracemalloc.start()
    page = ledger.summaries(limit=50)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(page.runs) == 20
    assert peak < 1024 * 1024, f"a page of 20 summaries took {peak} bytes"  # 10 MiB of inputs


def test_summaries_show_what_a_list_of_runs_shows(ledger: fl.Ledger) -> None:
    finished = ledger.start(wide, 4, tags=["b", "a"])
    finished.result()
    queued = ledger.submit(wide, 2, queue="emails")
    failing = ledger.submit(payload, "x", queue="emails")
    ledger.cancel(failing.id)
    page = ledger.summaries(limit=2)
    assert [s["id"] for s in page.runs] == [failing.id, queued.id]
    assert page.next_cursor is not None
    rest = ledger.summaries(limit=2, cursor=page.next_cursor)
    assert rest.runs and rest.runs[0]["workflow"] == "read-child"  # child runs are runs too
    top = ledger.summaries(workflow="read-wide", status="completed").runs[0]
    assert top["id"] == finished.id
    run = ledger.get(finished.id)
    assert top["tags"] == ["a", "b"] and top["status"] == "completed"
    assert top["counts"] == {"total": 6, "completed": 6, "failed": 0, "skipped": 0}
    own = [u for step in run.steps for u in step.usage]
    assert top["own_usage"]["calls"] == len(own) == 4
    assert top["own_usage"]["tokens"] == sum(u.input_tokens + u.output_tokens for u in own)
    assert top["duration"] == pytest.approx(run.duration.total_seconds())  # type: ignore[union-attr]
    assert [s["id"] for s in ledger.summaries(queue="emails").runs] == [failing.id, queued.id]
    assert ledger.summaries(status="cancelled", queue="emails").runs[0]["id"] == failing.id
    # cursors of runs() and summaries() are the same
    assert [r.id for r in ledger.runs(limit=2, cursor=page.next_cursor)] == \
        [s["id"] for s in rest.runs]
    # the page's revision: unchanged by reading, changed by a write on the page
    revision = ledger.summaries_revision(limit=2)
    assert revision == page.revision == ledger.summaries(limit=2).revision
    ledger.cancel(queued.id)
    assert ledger.summaries_revision(limit=2) != revision
