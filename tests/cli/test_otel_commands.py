"""`flowledger otel export` as a real command: the spans of recorded runs reach a real
OTLP/HTTP receiver with the ids live tracing gave them, the same on every export; bad
input and a missing `otel` extra give one readable line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import flowledger as fl
from tests.helpers.otlp_receiver import ReceivedSpan, Receiver
from tests.helpers.procs import CHILD_PATH, ROOT


@fl.step(retries=1, backoff=0.001)
def cli_call(n: int) -> int:
    attempt = fl.current_step().attempt
    fl.record_usage("claude-3-5-haiku-latest", input_tokens=30, output_tokens=3,
                    provider="anthropic")
    if attempt == 1:
        raise TimeoutError("slow")
    return n + 1


@fl.step()
def cli_leaf(n: int) -> int:
    return n * 2


@fl.workflow(name="otel_cli_child")
def cli_child(n: int) -> int:
    return cli_leaf(n)


@fl.workflow(name="otel_cli")
def cli_flow(n: int) -> int:
    return cli_child(cli_call(n))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def otel(db_url: str, receiver: Receiver | None, *args: str,
         path: str = CHILD_PATH) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = path
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint.removesuffix("/v1/traces")
    return subprocess.run([sys.executable, "-m", "flowledger", "--db", db_url, "otel",
                           "export", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _shape(spans: list[ReceivedSpan]) -> list[tuple[str, str | None]]:
    """The tree without ids: each span's name and its parent's."""
    names = {s.span_id: s.name for s in spans}
    return sorted((s.name, names.get(s.parent_span_id or "")) for s in spans)


def test_export_gives_live_ids_and_the_same_ids_twice(db_url: str,
                                                      receiver: Receiver) -> None:
    live_spans = fl.Telemetry(exporter=_ListExporter())
    with fl.Ledger(db_url, telemetry=live_spans) as ledger:
        assert ledger.run(cli_flow, 1) == 4
        traced_id = ledger.runs(workflow="otel_cli").runs[0].id
    with fl.Ledger(db_url, telemetry=False) as ledger:
        ledger.run(cli_flow, 2)
        untraced_id = ledger.runs(workflow="otel_cli").runs[0].id
    assert untraced_id != traced_id
    live = _ListExporter.received

    done = otel(db_url, receiver, traced_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exported 8 spans of 2 runs"
    first = receiver.spans()
    assert sorted(s.key() for s in first) == sorted(live)
    receiver.clear()
    again = otel(db_url, receiver, traced_id[:18])
    assert again.returncode == 0, again.stderr
    assert sorted(s.key() for s in receiver.spans()) == sorted(s.key() for s in first)

    receiver.clear()
    untraced = otel(db_url, receiver, untraced_id, "--json")
    assert untraced.returncode == 0, untraced.stderr
    assert json.loads(untraced.stdout) == {"runs": 2, "spans": 8}
    exported = receiver.spans()
    assert _shape(exported) == _shape(first)
    assert {s.trace_id for s in exported} == {uuid.UUID(untraced_id).hex}

    receiver.clear()
    recent = otel(db_url, receiver, "--since", "1h", "--json")
    assert recent.returncode == 0, recent.stderr
    assert json.loads(recent.stdout) == {"runs": 4, "spans": 16}


def test_bad_input_is_one_readable_line(db_url: str, receiver: Receiver,
                                        tmp_path: Path) -> None:
    fl.Ledger(db_url).close()
    unknown = otel(db_url, receiver, str(uuid.uuid4()))
    assert unknown.returncode == 3 and "no run with id" in unknown.stderr
    bad_since = otel(db_url, receiver, "--since", "yesterday-ish")
    assert bad_since.returncode == 2 and "not a time" in bad_since.stderr
    nothing = otel(db_url, receiver)
    assert nothing.returncode == 2 and "name the runs to export" in nothing.stderr
    nowhere = otel(db_url, None, "--since", "1h")
    assert nowhere.returncode == 2 and "OTEL_EXPORTER_OTLP_ENDPOINT" in nowhere.stderr
    # Without the `otel` extra: an `opentelemetry` package that cannot be imported.
    blocked = tmp_path / "blocked" / "opentelemetry"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(
        'raise ImportError("No module named \'opentelemetry\' (hidden by the test)")\n')
    missing = otel(db_url, receiver, "--since", "1h",
                   path=os.pathsep.join([str(blocked.parent), CHILD_PATH]))
    assert missing.returncode == 2, missing.stderr
    assert "pip install 'flowledger[otel]'" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert receiver.spans() == []


class _ListExporter:
    """An exporter that keeps the keys of what it is given (spans sent live)."""

    received: ClassVar[list[tuple[object, ...]]] = []

    def __init__(self) -> None:
        type(self).received = []

    def export(self, spans: object) -> object:
        from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: PLC0415

        for span in spans:  # type: ignore[attr-defined]
            parent = span.parent.span_id if span.parent else None
            type(self).received.append((
                span.name, f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}",
                None if parent is None else f"{parent:016x}", span.start_time, span.end_time,
                span.status.status_code.value,
                tuple(sorted((k, list(v) if isinstance(v, tuple) else v)
                             for k, v in span.attributes.items()))))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
