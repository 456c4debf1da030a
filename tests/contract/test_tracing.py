"""OpenTelemetry traces, on SQLite and PostgreSQL: a real OTLP/HTTP receiver gets the span
tree of a run (retried step, LLM calls, child run) from the real OTLPSpanExporter
configured by OTEL_* variables; exports of recorded runs carry the ids live tracing gave;
a run started inside a span continues its trace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flowledger as fl
from tests.helpers.otlp_receiver import ReceivedSpan, Receiver

INTERNAL, CLIENT = 1, 3  # the protobuf's SpanKind numbers
UNSET, OK, ERROR = 0, 1, 2


@fl.step(retries=2, backoff=0.001)
def ask_model(prompt: str) -> str:
    attempt = fl.current_step().attempt
    fl.record_usage("gpt-4o", input_tokens=100 * attempt, output_tokens=20,
                    cached_input_tokens=40, reasoning_tokens=5, provider="openai")
    if attempt == 1:
        raise ConnectionError("the model timed out")
    return prompt.upper()


@fl.step()
def measure(text: str) -> int:
    return len(text)


@fl.workflow(name="trace_child")
def summarize(text: str) -> int:
    return measure(text)


@fl.workflow(name="trace_parent")
def pipeline(prompt: str) -> int:
    return summarize(ask_model(prompt))


@fl.step()
def explode() -> None:
    raise ValueError("bad input")


@fl.workflow(name="trace_failing")
def failing() -> None:
    explode()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as started:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", started.endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "tracing-test")
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
        yield started


def _by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    found: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def _check_tree(spans: list[ReceivedSpan], run_id: str) -> None:
    """The span tree of one ``pipeline`` run: names, parents and attributes."""
    names = _by_name(spans)
    assert sorted(names) == ["chat gpt-4o", "run trace_child", "run trace_parent",
                             "step ask_model", "step measure", "step trace_child"]
    assert len(spans) == 8, [s.name for s in spans]
    # One trace, whose id is the (root) run's.
    assert {s.trace_id for s in spans} == {uuid.UUID(run_id).hex}
    assert len({s.span_id for s in spans}) == len(spans)

    (root,) = names["run trace_parent"]
    assert root.parent_span_id is None and root.kind == INTERNAL
    assert root.attributes["flowledger.run.id"] == run_id
    assert root.attributes["flowledger.workflow.name"] == "trace_parent"
    assert root.attributes["flowledger.workflow.version"] == "1"
    assert root.attributes["flowledger.run.status"] == "completed"
    assert root.attributes["flowledger.owner"] == "default"
    assert root.attributes["flowledger.run.tags"] == ["nightly"]
    assert root.status_code == OK
    assert root.service_name == "tracing-test"

    first, second = sorted(names["step ask_model"],
                           key=lambda s: s.attributes["flowledger.step.attempt"])
    for attempt, span in ((1, first), (2, second)):
        assert span.parent_span_id == root.span_id
        assert span.attributes["flowledger.step.position"] == 1
        assert span.attributes["flowledger.step.name"] == "ask_model"
        assert span.attributes["flowledger.step.attempt"] == attempt
    assert first.attributes["flowledger.step.status"] == "failed"
    assert first.attributes["error.type"] == "builtins.ConnectionError"
    assert first.status_code == ERROR and "the model timed out" in first.status_message
    (event,) = first.events
    assert event[0] == "exception"
    assert dict(event[1])["exception.message"] == "the model timed out"
    assert second.attributes["flowledger.step.status"] == "completed"
    assert second.status_code == OK and "error.type" not in second.attributes
    assert first.end_ns <= second.start_ns

    # One LLM span under each attempt, in the GenAI conventions.
    calls = {span.parent_span_id: span for span in names["chat gpt-4o"]}
    assert set(calls) == {first.span_id, second.span_id}
    for attempt, span in ((1, calls[first.span_id]), (2, calls[second.span_id])):
        assert span.kind == CLIENT
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert span.attributes["gen_ai.request.model"] == "gpt-4o"
        assert span.attributes["gen_ai.usage.input_tokens"] == 100 * attempt
        assert span.attributes["gen_ai.usage.output_tokens"] == 20
        assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 40
        assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == 5
        cost = span.attributes["gen_ai.usage.cost"]
        assert isinstance(cost, float) and cost > 0
        assert span.attributes["flowledger.cost.usd"] == cost

    # The child run hangs under the step that called it, its step under it.
    (calling,) = names["step trace_child"]
    assert calling.parent_span_id == root.span_id
    assert calling.attributes["flowledger.step.position"] == 2
    (child,) = names["run trace_child"]
    assert child.parent_span_id == calling.span_id
    assert child.attributes["flowledger.run.parent_id"] == run_id
    (inner,) = names["step measure"]
    assert inner.parent_span_id == child.span_id
    assert calling.start_ns <= child.start_ns <= child.end_ns <= calling.end_ns


def test_live_trace_reaches_an_otlp_receiver(db_url: str, receiver: Receiver) -> None:
    with fl.Ledger(db_url) as ledger:  # telemetry from the OTEL_* variables
        assert ledger.run(pipeline, "hello", tags=["nightly"]) == 5
        run_id = ledger.runs(workflow="trace_parent").runs[0].id
    # close() flushed: everything arrived
    _check_tree(receiver.spans(), run_id)


def test_export_of_an_untraced_run_gives_the_live_tree(db_url: str,
                                                       receiver: Receiver) -> None:
    with fl.Ledger(db_url, telemetry=False) as ledger:
        ledger.run(pipeline, "hello", tags=["nightly"])
        run_id = ledger.runs(workflow="trace_parent").runs[0].id
        assert receiver.spans() == []
        sent = ledger.export_traces([run_id[:13]])
        assert sent == fl.TracesExported(runs=2, spans=8)
        first = receiver.spans()
        _check_tree(first, run_id)
        receiver.clear()
        ledger.export_traces([run_id])
        assert sorted(s.key() for s in receiver.spans()) == sorted(s.key() for s in first)


def test_live_ids_equal_exported_ids(db_url: str, receiver: Receiver) -> None:
    with fl.Ledger(db_url) as ledger:
        ledger.run(pipeline, "hi", tags=["nightly"])
        with pytest.raises(fl.RunFailed):
            ledger.run(failing)
    live = receiver.spans()
    receiver.clear()
    with fl.Ledger(db_url, telemetry=False) as ledger:
        sent = ledger.export_traces(since=timedelta(hours=1))
    assert sent.runs == 3
    exported = receiver.spans()
    assert sorted(s.key() for s in exported) == sorted(s.key() for s in live)
    (failed_run,) = [s for s in exported if s.name == "run trace_failing"]
    assert failed_run.status_code == ERROR
    assert failed_run.attributes["flowledger.run.status"] == "failed"
    assert failed_run.attributes["error.type"] == "builtins.ValueError"
    assert "bad input" in failed_run.status_message


def test_a_run_started_inside_a_span_continues_its_trace(db_url: str) -> None:
    spans = InMemorySpanExporter()
    users = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(users))
    tracer = provider.get_tracer("the-web-app")

    @fl.step()
    def instrumented(text: str) -> str:
        with tracer.start_as_current_span("user work"):
            return text

    @fl.workflow(name="trace_inside")
    def inside(text: str) -> str:
        return instrumented(text)

    telemetry = fl.Telemetry(processor=SimpleSpanProcessor(spans))
    with fl.Ledger(db_url, telemetry=telemetry) as ledger, \
            tracer.start_as_current_span("POST /orders") as request:
        ledger.run(inside, "x")
        context = request.get_span_context()
        run = ledger.get(ledger.runs(workflow="trace_inside").runs[0].id)
        row = ledger.store.get_run(uuid.UUID(run.id), None)
        assert row is not None
        assert row.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
        # Submitted for a worker: the traceparent is recorded the same way.
        queued = ledger.submit(inside, "y", queue="traced")
        queued_row = ledger.store.get_run(uuid.UUID(queued.id), None)
        assert queued_row is not None and queued_row.traceparent == row.traceparent
    finished = {s.name: s for s in spans.get_finished_spans()}
    run_span = finished["run trace_inside"]
    assert run_span.context.trace_id == context.trace_id
    assert run_span.parent is not None and run_span.parent.span_id == context.span_id
    # The user's own span inside the step nests under the step attempt's span.
    (user_span,) = [s for s in users.get_finished_spans() if s.name == "user work"]
    assert user_span.parent is not None
    assert user_span.parent.span_id == finished["step instrumented"].context.span_id
    assert user_span.context.trace_id == context.trace_id


def test_without_a_span_a_run_records_no_traceparent(ledger: fl.Ledger) -> None:
    ledger.run(summarize, "abc")
    run_id = ledger.runs(workflow="trace_child").runs[0].id
    row = ledger.store.get_run(uuid.UUID(run_id), None)
    assert row is not None and row.traceparent is None


def test_export_errors(db_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
                       ) -> None:
    with fl.Ledger(db_url, telemetry=False) as ledger:
        with pytest.raises(fl.RunNotFound):
            ledger.export_traces([str(uuid.uuid4())])
        with pytest.raises(fl.ConfigurationError, match="name the runs"):
            ledger.export_traces()
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        ledger.run(summarize, "abc")
        with pytest.raises(fl.ConfigurationError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
            ledger.export_traces(since=timedelta(hours=1))
    assert receiver.spans() == []


class _BrokenProcessor:
    """A span processor that fails on every span."""

    def on_end(self, span: object) -> None:
        raise RuntimeError("collector exploded")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def test_tracing_failures_never_fail_a_run(db_url: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    telemetry = fl.Telemetry(processor=_BrokenProcessor())
    with fl.Ledger(db_url, telemetry=telemetry) as ledger:
        assert ledger.run(pipeline, "hello") == 5
        run = ledger.get(ledger.runs(workflow="trace_parent").runs[0].id)
    assert run.status is fl.RunStatus.COMPLETED
    warnings = [r.getMessage() for r in caplog.records if "tracing:" in r.getMessage()]
    assert any("step 'ask_model'" in w and "collector exploded" in w for w in warnings)
    assert any(f"run {run.id}" in w for w in warnings)


@fl.workflow(name="trace_waits")
def pausing() -> dict[str, int]:
    fl.sleep(0.01)
    return fl.wait_for_event("go")  # type: ignore[no-any-return]


def _keys(spans: Sequence[ReadableSpan]) -> list[tuple[object, ...]]:
    return sorted((s.name, s.context.trace_id if s.context else None,
                   s.context.span_id if s.context else None,
                   s.parent.span_id if s.parent else None, s.start_time, s.end_time,
                   tuple(sorted((s.attributes or {}).items())))
                  for s in spans)


def test_sleeps_and_waits_are_traced_as_exported(db_url: str) -> None:
    live = InMemorySpanExporter()
    exported = InMemorySpanExporter()
    with fl.Ledger(db_url, telemetry=fl.Telemetry(processor=SimpleSpanProcessor(live))) \
            as ledger:
        handle = ledger.start(pausing)
        ledger.send_event(handle.id, "go", {"x": 1})
        assert handle.result(timeout=30) == {"x": 1}
        ledger.export_traces([handle.id],
                             telemetry=fl.Telemetry(processor=SimpleSpanProcessor(exported)))
    names = sorted(s.name for s in live.get_finished_spans())
    assert names == ["run trace_waits", "step sleep", "step wait_for_event:go"]
    assert _keys(live.get_finished_spans()) == _keys(exported.get_finished_spans())
