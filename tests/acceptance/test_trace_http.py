"""A run queued over HTTP with a W3C ``traceparent`` header continues the caller's trace:
a real `flowledger serve` with a worker, traced through OTEL_* variables, sends the run's
spans to a real OTLP/HTTP receiver under the caller's span."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import flowledger as fl
from tests.helpers.otlp_receiver import Receiver
from tests.helpers.server import serving

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as started:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", started.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "flowledger-serve")
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
        yield started


def test_a_run_queued_with_a_traceparent_continues_that_trace(db_url: str,
                                                               receiver: Receiver) -> None:
    with fl.Ledger(db_url, telemetry=False) as ledger:
        token = ledger.create_token("alice").secret
    with serving(db_url, "--workers", "1") as server, server.client(token) as api:
        answer = api.post("/workflows/report/runs", json={"inputs": {"n": 2}},
                          headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
        assert answer.status_code == 202, answer.text
        traced_id = answer.json()["id"]
        malformed = api.post("/workflows/report/runs", json={"inputs": {"n": 3}},
                             headers={"traceparent": "00-not-a-trace-01"})
        assert malformed.status_code == 202, malformed.text
        plain_id = malformed.json()["id"]
        spans = receiver.wait_for(
            lambda got: sum(s.name == "run report" for s in got) == 2, timeout=60)
    runs = {s.attributes["flowledger.run.id"]: s for s in spans if s.name == "run report"}
    traced, plain = runs[traced_id], runs[plain_id]
    assert (traced.trace_id, traced.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert traced.attributes["flowledger.queue"] == "default"
    assert traced.service_name == "flowledger-serve"
    steps = [s for s in spans if s.trace_id == CALLER_TRACE and s.name.startswith("step ")]
    assert sorted(s.name for s in steps) == ["step fetch", "step write_report"]
    assert {s.parent_span_id for s in steps} == {traced.span_id}
    # A malformed header is ignored: that run starts its own trace.
    assert (plain.trace_id, plain.parent_span_id) == (uuid.UUID(plain_id).hex, None)
    with fl.Ledger(db_url, telemetry=False) as ledger:
        row = ledger.store.get_run(uuid.UUID(traced_id), None)
        assert row is not None
        assert row.traceparent == f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
