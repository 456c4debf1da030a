"""OpenTelemetry traces: every run a trace, every step attempt and LLM call a span.

``fl.Telemetry`` is where spans go (an OTLP/HTTP exporter configured by the standard
``OTEL_*`` environment variables, unless an exporter or processor is given). A Ledger
uses the one it is given (``fl.Ledger(telemetry=...)``), else ``Telemetry.from_env()``.
The engine calls it after each commit that ends something: a step attempt (with the LLM
calls recorded during it) and a run. OpenTelemetry is imported only once a Telemetry
sends its first span, so with telemetry off nothing of it is loaded.

Example::

    from opentelemetry.sdk.trace.export import ConsoleSpanExporter
    ledger = fl.Ledger(telemetry=fl.Telemetry(exporter=ConsoleSpanExporter()))
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .traceids import RunTrace

if TYPE_CHECKING:
    from .executor import Execution
    from .stepcall import StepCall
    from .store import RunRead, UsageRow

log = logging.getLogger("flowledger")
INSTALL_HINT = ("OpenTelemetry is not installed: pip install 'flowledger[otel]' "
                "(it brings opentelemetry-sdk and the OTLP/HTTP exporter)")
# Spans per request of an export (the batching processor's default batch size).
EXPORT_BATCH = 512
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _spans() -> Any:
    """The span builder (and OpenTelemetry with it), imported on first use."""
    try:
        from . import spans  # noqa: PLC0415 (OpenTelemetry only when telemetry is used)
    except ImportError as exc:
        raise ConfigurationError(f"{INSTALL_HINT} ({exc})") from None
    return spans


def _enabled_by_env() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return {name.strip() for name in exporters.split(",")} != {"none"}
    return any(os.environ.get(name) for name in _ENDPOINTS)


class Telemetry:
    """Where a Ledger's spans go: ``exporter`` (default: OTLP over HTTP, configured by the
    ``OTEL_EXPORTER_OTLP_*`` variables) behind a batching processor, or your own
    ``processor``. ``service_name`` defaults to ``OTEL_SERVICE_NAME``, else
    ``flowledger``; ``OTEL_RESOURCE_ATTRIBUTES`` is honoured.

    Example::

        telemetry = fl.Telemetry(service_name="billing-worker")
        with fl.Ledger(telemetry=telemetry) as ledger:
            ledger.run(invoice, 42)  # one trace: the run, its step attempts, LLM calls
    """

    def __init__(self, exporter: Any = None, *, processor: Any = None,
                 service_name: str | None = None) -> None:
        if exporter is not None and processor is not None:
            raise ConfigurationError("give Telemetry an exporter or a processor, not both")
        spans = _spans()
        self._exporter = exporter
        self._processor = processor
        self._given_processor = processor is not None
        self._lock = threading.Lock()
        # LLM calls of attempts in progress, by run, position and attempt.
        self._calls: dict[tuple[uuid.UUID, int, int], list[UsageRow]] = {}
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 (see _spans)

        # The environment's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), named
        # ``flowledger`` when it names no service.
        resource = Resource.create({"service.name": service_name} if service_name else {})
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "flowledger"}))
        self.resource = resource
        self._build = spans

    @classmethod
    def from_env(cls) -> Telemetry | None:
        """A Telemetry configured by the ``OTEL_*`` environment variables, or None when
        they ask for none: ``OTEL_SDK_DISABLED=true``, ``OTEL_TRACES_EXPORTER=none``, or
        neither an endpoint nor an exporter is set. ``otlp`` and ``console`` exporters are
        understood. Raises ConfigurationError when the ``otel`` extra is missing.

        Example: ``telemetry = fl.Telemetry.from_env()``
        """
        if not _enabled_by_env():
            return None
        names = {name.strip() for name in
                 os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")}
        exporters = "otlp" if names & {"otlp", "otlp_proto_http"} else ",".join(sorted(names))
        if exporters == "console":
            _spans()
            from opentelemetry.sdk.trace.export import (  # noqa: PLC0415 (see _spans)
                ConsoleSpanExporter,
            )

            return cls(exporter=ConsoleSpanExporter())
        if exporters not in ("otlp", "otlp_proto_http"):
            raise ConfigurationError(f"OTEL_TRACES_EXPORTER={exporters!r} is not supported "
                                     "by flowledger: use otlp, console or none")
        return cls()

    @property
    def processor(self) -> Any:
        """The span processor spans are handed to (made on first use)."""
        with self._lock:
            if self._processor is None:
                from opentelemetry.sdk.trace.export import (  # noqa: PLC0415 (see _spans)
                    BatchSpanProcessor,
                )

                exporter = self._exporter or self._otlp_exporter()
                self._processor = BatchSpanProcessor(exporter)
                atexit.register(self._processor.shutdown)
            return self._processor

    def flush(self, timeout: float = 30.0) -> bool:
        """Send the spans still buffered; False if ``timeout`` seconds were not enough."""
        with self._lock:
            processor = self._processor
        return True if processor is None else bool(
            processor.force_flush(int(timeout * 1000)))

    def shutdown(self) -> None:
        """Flush, then stop the processor (and its exporter)."""
        with self._lock:
            processor = self._processor
        if processor is not None:
            processor.shutdown()

    # -- what the engine calls ----------------------------------------------------------
    def emit(self, spans: Iterable[Any]) -> int:
        """Hand built spans to the processor; returns how many."""
        processor = self.processor
        count = 0
        for span in spans:
            processor.on_end(span)
            count += 1
        return count

    def step_scope(self, call: StepCall) -> AbstractContextManager[Any]:
        """While a step body runs: its attempt's span is the current OpenTelemetry span,
        so the user's own spans nest under it."""
        return self._scope(call.execution.trace, call.execution.run_id, call.position,
                           call.attempt)

    @contextmanager
    def _scope(self, trace: RunTrace, run_id: uuid.UUID, position: int,
               attempt: int) -> Iterator[None]:
        from opentelemetry import context  # noqa: PLC0415 (loaded already: see _spans)
        from opentelemetry.trace import NonRecordingSpan, set_span_in_context  # noqa: PLC0415

        span = NonRecordingSpan(self._build.attempt_context(trace, run_id, position, attempt))
        token = context.attach(set_span_in_context(span))
        try:
            yield
        finally:
            context.detach(token)

    def usage_recorded(self, call: StepCall, row: UsageRow) -> None:
        """An LLM call recorded during the current attempt: sent with the attempt."""
        with self._lock:
            self._calls.setdefault((row.run_id, row.position, call.attempt), []).append(row)

    def attempt_ended(self, call: StepCall, status: str, started_at: int | None,
                      ended_at: int, error: str | None) -> None:
        """A step attempt's outcome was committed: send its span and its LLM calls'.
        Tracing never fails a step: a failure to build or hand over spans is logged."""
        try:
            self._attempt_ended(call, status, started_at, ended_at, error)
        except Exception as exc:
            log.warning("tracing: the span of step %r (position %d) was not sent: %s",
                        call.name, call.position, exc)

    def _attempt_ended(self, call: StepCall, status: str, started_at: int | None,
                       ended_at: int, error: str | None) -> None:
        execution = call.execution
        trace = execution.trace
        with self._lock:
            calls = self._calls.pop((execution.run_id, call.position, call.attempt), [])
        build = self._build
        record = build.AttemptRecord(execution.run_id, call.position, call.name, call.attempt,
                                     status, started_at, ended_at, error)
        self.emit([build.attempt_span(trace, record, self.resource),
                   *(build.usage_span(trace, row, call.attempt, self.resource)
                     for row in calls)])

    def run_ended(self, execution: Execution) -> None:
        """A run's end was committed: send its span, built from its record (a store that
        cannot be read now, e.g. in best-effort mode, leaves it to ``otel export``)."""
        with self._lock:  # calls of attempts interrupted by the run's end are not sent
            for key in [key for key in self._calls if key[0] == execution.run_id]:
                del self._calls[key]
        try:
            row = execution.runtime.store.get_run(execution.run_id, None)
            span = None if row is None else self._build.run_span(row, self.resource)
            if span is not None:
                self.emit([span])
        except Exception as exc:
            log.warning("tracing: the span of run %s was not sent: %s",
                        execution.run_id_text, exc)

    def export(self, reads: Iterable[RunRead]) -> int:
        """Send the spans of recorded runs; returns how many were sent. Through the
        exporter itself, in batches whose result is checked (a batching processor would
        drop spans past its queue, and say nothing of a failed export); through the
        processor when one was given instead."""
        build = self._build
        spans = (span for read in reads for span in build.recorded_spans(read, self.resource))
        if self._given_processor:
            return self.emit(spans)
        exporter = self._exporter or self._otlp_exporter()
        from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: PLC0415

        count = 0
        batch: list[Any] = []
        for span in [*spans, None]:
            if span is not None:
                batch.append(span)
            if batch and (span is None or len(batch) >= EXPORT_BATCH):
                if exporter.export(batch) is not SpanExportResult.SUCCESS:
                    raise ConfigurationError(
                        f"the trace exporter refused {len(batch)} spans after {count} were "
                        "sent (is the OTLP endpoint reachable? OTEL_EXPORTER_OTLP_ENDPOINT "
                        "names it)")
                count += len(batch)
                batch = []
        if exporter is not self._exporter:
            exporter.shutdown()
        return count

    @staticmethod
    def _otlp_exporter() -> Any:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise ConfigurationError(f"{INSTALL_HINT} ({exc})") from None
        return OTLPSpanExporter()


def traced(telemetry: Telemetry | None, call: StepCall) -> AbstractContextManager[Any]:
    """The scope a step body runs in: its attempt's span when tracing, else nothing."""
    return nullcontext() if telemetry is None else telemetry.step_scope(call)


def configured(telemetry: Telemetry | bool | None) -> Telemetry | None:
    """The Telemetry a Ledger uses: the one given, none for False, else the environment's
    (a missing ``otel`` extra then only logs a warning: the environment may be meant for
    other programs)."""
    if isinstance(telemetry, Telemetry):
        return telemetry
    if telemetry is False:
        return None
    if telemetry not in (None, True):
        raise ConfigurationError(f"telemetry must be a fl.Telemetry, True, False or None, "
                                 f"not {telemetry!r}")
    if telemetry is True:
        return Telemetry.from_env() or Telemetry()
    try:
        return Telemetry.from_env()
    except ConfigurationError as exc:
        log.warning("tracing stays off: %s", exc)
        return None


__all__ = ["INSTALL_HINT", "Telemetry", "configured", "traced"]
