"""Trace ids derived from the records, W3C traceparents, and which OTEL_* settings turn
tracing on: no database needed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import flowledger as fl
from flowledger.telemetry import configured
from flowledger.traceids import (
    RunTrace,
    TraceParent,
    attempt_span_id,
    current_traceparent,
    run_span_id,
    usage_span_id,
)

RUN = uuid.UUID("01a23793-2839-72f9-b93a-ebeeabd02d30")


def test_span_ids_are_fixed_functions_of_the_records() -> None:
    # Spans sent live by an older process and exported by a newer one must agree: these
    # values may never change.
    assert run_span_id(RUN) == 0x773F29E50C7F5738
    assert attempt_span_id(RUN, 3, 2) == 0x3FA166FA4E563068
    assert usage_span_id(RUN, 3, "gpt-4o", 1796228720927920) == 0xA04028DFA637D4B6
    assert len({attempt_span_id(RUN, p, a) for p in range(1, 30) for a in range(1, 5)}) == 116


def test_a_run_is_its_own_trace_unless_it_continues_one() -> None:
    own = RunTrace.of(RUN, None)
    assert (own.trace_id, own.span_id, own.parent_span_id) == (RUN.int, run_span_id(RUN), None)
    text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    continued = RunTrace.of(RUN, text)
    assert continued.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert continued.parent_span_id == 0xB7AD6B7169203331 and continued.sampled
    child = TraceParent.parse(continued.child_traceparent(RUN, 2, 1))
    assert child == TraceParent(continued.trace_id, attempt_span_id(RUN, 2, 1), True)
    assert TraceParent.parse(text) is not None and TraceParent.parse(text).text() == text  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["", "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01",
                                  "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",
                                  "00-xyz-b7ad6b7169203331-01"])
def test_malformed_traceparents_are_ignored(text: str) -> None:
    assert TraceParent.parse(text) is None
    assert RunTrace.of(RUN, text).trace_id == RUN.int


def test_no_current_span_without_opentelemetry_imported() -> None:
    code = ("import sys, flowledger.traceids as t; assert t.current_traceparent() is None; "
            "assert not any(m.startswith('opentelemetry') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert current_traceparent() is None  # imported here, but no span is current


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}, False),
])
def test_the_environment_decides(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                 on: bool) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (fl.Telemetry.from_env() is not None) is on
    assert (configured(None) is not None) is on
    assert configured(False) is None


def test_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert fl.Telemetry().resource.attributes["service.name"] == "flowledger"
    assert fl.Telemetry(service_name="a").resource.attributes["service.name"] == "a"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")
    assert fl.Telemetry().resource.attributes["service.name"] == "from-attrs"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert fl.Telemetry().resource.attributes["service.name"] == "from-env"


def test_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(fl.ConfigurationError, match="zipkin"):
        fl.Telemetry.from_env()
    assert configured(None) is None  # the Ledger logs it and runs untraced
    with pytest.raises(fl.ConfigurationError, match="not both"):
        fl.Telemetry(exporter=object(), processor=object())
    with pytest.raises(fl.ConfigurationError, match="telemetry must be"):
        configured("yes")  # type: ignore[arg-type]


def test_with_telemetry_off_opentelemetry_is_never_imported(tmp_path: Path) -> None:
    code = """
import sys, flowledger as fl

@fl.step()
def one(n: int) -> int:
    fl.record_usage("gpt-4o", input_tokens=1, output_tokens=1)
    return n

@fl.workflow(name="untraced")
def untraced(n: int) -> int:
    return one(n)

with fl.Ledger(sys.argv[1]) as ledger:
    assert ledger.run(untraced, 3) == 3
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, "-c", code, f"sqlite:///{tmp_path}/off.db"],
                   check=True, timeout=120, env=env)
