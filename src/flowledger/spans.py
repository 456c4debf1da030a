"""Records to OpenTelemetry spans: the one builder behind live tracing and ``otel export``.

Spans are built whole, as ``ReadableSpan`` objects with the ids of ``traceids`` and the
recorded times, and handed to a span processor; live tracing and a later export build the
same span from the same record, so they carry the same ids. Imported only when telemetry
is used (it imports the OpenTelemetry SDK).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from typing import Any, NamedTuple

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .store import RunRead, RunRow, UsageRow
from .traceids import RunTrace, attempt_span_id, usage_span_id

ENDED = ("completed", "failed", "cancelled")
SCOPE = InstrumentationScope("flowledger", version("flowledger"))


class AttemptRecord(NamedTuple):
    """One ended step attempt, as recorded (or as about to be recorded, live)."""

    run_id: uuid.UUID
    position: int
    name: str
    attempt: int
    status: str  # completed | failed | skipped | interrupted
    started_at: int | None
    ended_at: int | None
    error: str | None  # the recorded error JSON


def _context(trace: RunTrace, span_id: int) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if trace.sampled else TraceFlags.DEFAULT)
    return SpanContext(trace.trace_id, span_id, is_remote=False, trace_flags=flags)


def _error(text: str | None) -> tuple[str, str, str]:
    """(type, message, traceback) of a recorded error."""
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return "Error", text or "", ""
    if not isinstance(found, dict):
        return "Error", str(found), ""
    return (str(found.get("type") or "Error"), str(found.get("message") or ""),
            str(found.get("traceback") or ""))


def _ns(micros: int | None, fallback: int | None = None) -> int:
    value = micros if micros is not None else fallback
    return (value or 0) * 1000


def attempt_context(trace: RunTrace, run_id: uuid.UUID, position: int,
                    attempt: int) -> SpanContext:
    """The span context of a step attempt (made current while its body runs)."""
    return _context(trace, attempt_span_id(run_id, position, attempt))


def attempt_span(trace: RunTrace, record: AttemptRecord, resource: Resource) -> ReadableSpan:
    """The span ``step {name}`` of one step attempt, under its run's span."""
    attributes: dict[str, Any] = {
        "flowledger.run.id": str(record.run_id), "flowledger.step.position": record.position,
        "flowledger.step.name": record.name, "flowledger.step.attempt": record.attempt,
        "flowledger.step.status": record.status}
    events: list[Event] = []
    status = Status(StatusCode.OK) if record.status == "completed" else Status(StatusCode.UNSET)
    if record.status in ("failed", "interrupted"):
        kind, message, traceback = _error(record.error)
        attributes["error.type"] = kind
        events.append(Event("exception", {"exception.type": kind, "exception.message": message,
                                          "exception.stacktrace": traceback},
                            _ns(record.ended_at, record.started_at)))
        status = Status(StatusCode.ERROR, f"{kind}: {message}")
    return ReadableSpan(
        name=f"step {record.name}",
        context=attempt_context(trace, record.run_id, record.position, record.attempt),
        parent=_context(trace, trace.span_id), resource=resource, attributes=attributes,
        events=events, kind=SpanKind.INTERNAL, status=status,
        start_time=_ns(record.started_at, record.ended_at),
        end_time=_ns(record.ended_at, record.started_at), instrumentation_scope=SCOPE)


def usage_span(trace: RunTrace, row: UsageRow, attempt: int,
               resource: Resource) -> ReadableSpan:
    """A recorded LLM call, under its step attempt, in the GenAI semantic conventions.

    Only the time the call was recorded is known: the span has no duration.
    """
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": row.model,
        "gen_ai.usage.input_tokens": row.input_tokens,
        "gen_ai.usage.output_tokens": row.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": row.cached_input_tokens,
        "gen_ai.usage.reasoning.output_tokens": row.reasoning_tokens,
        "flowledger.run.id": str(row.run_id), "flowledger.step.position": row.position,
        "flowledger.llm.cache_hit": bool(row.cache_hit)}
    if row.provider:
        attributes["gen_ai.provider.name"] = row.provider
    if row.cost_usd is not None:
        # The GenAI conventions have no cost attribute yet: both names carry it.
        attributes["gen_ai.usage.cost"] = row.cost_usd
        attributes["flowledger.cost.usd"] = row.cost_usd
    return ReadableSpan(
        name=f"chat {row.model}",
        context=_context(trace, usage_span_id(row.run_id, row.position, row.model,
                                              row.recorded_at)),
        parent=attempt_context(trace, row.run_id, row.position, attempt), resource=resource,
        attributes=attributes, kind=SpanKind.CLIENT, status=Status(StatusCode.UNSET),
        start_time=_ns(row.recorded_at), end_time=_ns(row.recorded_at),
        instrumentation_scope=SCOPE)


def run_span(row: RunRow, resource: Resource) -> ReadableSpan | None:
    """The span ``run {workflow}`` of an ended run (None while it has not ended)."""
    if row.status not in ENDED:
        return None
    trace = RunTrace.of(row.id, row.traceparent)
    attributes: dict[str, Any] = {
        "flowledger.run.id": str(row.id), "flowledger.workflow.name": row.workflow,
        "flowledger.workflow.version": row.version, "flowledger.run.status": row.status,
        "flowledger.owner": row.owner}
    if row.tags:
        attributes["flowledger.run.tags"] = list(row.tags)
    if row.queue is not None:
        attributes["flowledger.queue"] = row.queue
    if row.parent_id is not None:
        attributes["flowledger.run.parent_id"] = str(row.parent_id)
    status = Status(StatusCode.OK) if row.status == "completed" else Status(StatusCode.UNSET)
    events: list[Event] = []
    if row.status == "failed":
        kind, message, traceback = _error(row.error)
        attributes["error.type"] = kind
        events.append(Event("exception", {"exception.type": kind, "exception.message": message,
                                          "exception.stacktrace": traceback},
                            _ns(row.completed_at)))
        status = Status(StatusCode.ERROR, f"{kind}: {message}")
    parent = None if trace.parent_span_id is None else SpanContext(
        trace.trace_id, trace.parent_span_id, is_remote=row.parent_id is None,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if trace.sampled else TraceFlags.DEFAULT))
    return ReadableSpan(
        name=f"run {row.workflow}", context=_context(trace, trace.span_id), parent=parent,
        resource=resource, attributes=attributes, events=events, kind=SpanKind.INTERNAL,
        status=status, start_time=_ns(row.started_at, row.created_at),
        end_time=_ns(row.completed_at, row.created_at), instrumentation_scope=SCOPE)


def attempt_of(row: UsageRow, starts: Sequence[tuple[int, int | None]]) -> int:
    """The attempt a usage record belongs to: the latest one begun before it was recorded
    (``starts``: (attempt, started_at) of the step's attempts)."""
    best = 1
    for attempt, started in sorted(starts):
        if started is not None and started <= row.recorded_at:
            best = attempt
    return best


def recorded_spans(read: RunRead, resource: Resource) -> Iterator[ReadableSpan]:
    """Every span of one recorded run (not its child runs): its ended step attempts,
    their LLM calls, and the run's span once it has ended."""
    run = read.run
    trace = RunTrace.of(run.id, run.traceparent)
    history = {(a.position, a.attempt): a for a in read.attempts}
    for step in read.steps:
        attempts: dict[int, AttemptRecord] = {}
        if step.status in ("completed", "failed", "skipped"):
            attempts[step.attempts] = AttemptRecord(
                run.id, step.position, step.name, step.attempts, step.status,
                step.started_at, step.completed_at, step.error)
        for (position, number), kept in history.items():
            if position == step.position:
                attempts[number] = AttemptRecord(
                    run.id, position, step.name, number, kept.status, kept.started_at,
                    kept.completed_at, kept.error)
        starts = [(n, a.started_at) for n, a in attempts.items()]
        if step.attempts not in attempts:
            starts.append((step.attempts, step.started_at))  # still running
        for number in sorted(attempts):
            yield attempt_span(trace, attempts[number], resource)
        for used in read.usage:
            if used.run_id == run.id and used.position == step.position:
                number = attempt_of(used, starts)
                if number in attempts:
                    yield usage_span(trace, used, number, resource)
    span = run_span(run, resource)
    if span is not None:
        yield span


__all__ = ["ENDED", "AttemptRecord", "attempt_context", "attempt_of", "attempt_span",
           "recorded_spans", "run_span", "usage_span"]
