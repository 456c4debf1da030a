"""The read path: ``Ledger.get`` reads a run whole in a fixed, small number of statements
and round trips whatever its size; ``Ledger.revision`` changes with every kind of write
that changes what ``get`` returns, and only then; previews keep large payloads out.

Statements are counted on the wire: SQLite's trace callback, libpq's protocol trace."""

from __future__ import annotations

import contextlib
import tempfile
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
