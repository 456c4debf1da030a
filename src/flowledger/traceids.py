"""Trace and span ids derived from the records, and W3C traceparents, without OpenTelemetry.

Every id of a run's trace follows from what is recorded, so a span sent live and the same
span exported later (``flowledger otel export``) carry the same ids:

- the trace id is the one of the run's stored traceparent (a submitting request's trace,
  or the calling step's for a child run), else the run id itself (a UUID is 128 bits);
- the run span's id comes from the run id, a step attempt's from the run id, position and
  attempt number, an LLM call's from the run id, position, model and time recorded.

Nothing here imports OpenTelemetry: the engine asks for a traceparent on every run it
creates, and ``import flowledger`` must stay light.

Example: ``traceids.attempt_span_id(run_id, 3, 1)``
"""

from __future__ import annotations

import hashlib
import struct
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import NamedTuple


def _span_id(kind: bytes, run_id: uuid.UUID, *numbers: int, text: str = "") -> int:
    # A fixed layout (never str() of a UUID: this runs on every step attempt).
    data = b"".join((kind, run_id.bytes, struct.pack(f">{len(numbers)}q", *numbers),
                     text.encode()))
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1  # 0 is the invalid span id


def run_span_id(run_id: uuid.UUID) -> int:
    """The id of a run's span."""
    return _span_id(b"run", run_id)


@lru_cache(maxsize=1024)  # asked for when a body starts and again when its attempt ends
def attempt_span_id(run_id: uuid.UUID, position: int, attempt: int) -> int:
    """The id of the span of attempt ``attempt`` of the step at ``position``."""
    return _span_id(b"attempt", run_id, position, attempt)


def usage_span_id(run_id: uuid.UUID, position: int, model: str, recorded_at: int) -> int:
    """The id of an LLM call's span (a usage record is identified by these, as the spool
    that replays usage records identifies it)."""
    return _span_id(b"usage", run_id, position, recorded_at, text=model)


class TraceParent(NamedTuple):
    """A W3C traceparent: the trace and the span a run's spans continue."""

    trace_id: int
    span_id: int
    sampled: bool = True

    def text(self) -> str:
        """``00-<trace id>-<span id>-<flags>``, as stored on the run."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"

    @classmethod
    def parse(cls, text: str | None) -> TraceParent | None:
        """The traceparent in ``text``, or None when it is absent or malformed."""
        if not text:
            return None
        parts = text.strip().split("-")
        if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
            return None
        try:
            trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
        except ValueError:
            return None
        if trace_id == 0 or span_id == 0:
            return None
        return cls(trace_id, span_id, bool(flags & 1))


class RunTrace(NamedTuple):
    """Where a run's spans go: its trace, its own span, and the span it hangs under."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    sampled: bool = True

    @classmethod
    def of(cls, run_id: uuid.UUID, traceparent: str | None) -> RunTrace:
        """The trace of run ``run_id`` whose stored traceparent is ``traceparent``."""
        parent = TraceParent.parse(traceparent)
        if parent is None:
            return cls(run_id.int, run_span_id(run_id), None)
        return cls(parent.trace_id, run_span_id(run_id), parent.span_id, parent.sampled)

    def child_traceparent(self, run_id: uuid.UUID, position: int, attempt: int) -> str:
        """The traceparent a child run started by that step attempt is recorded with."""
        return TraceParent(self.trace_id, attempt_span_id(run_id, position, attempt),
                           self.sampled).text()


_continuing: ContextVar[str | None] = ContextVar("flowledger_traceparent", default=None)


@contextmanager
def continuing(traceparent: str | None) -> Iterator[None]:
    """Runs created inside the block continue the trace of ``traceparent`` (the W3C header
    of a request that asked for them), unless it is absent or malformed.

    Example: ``with continuing(request.headers.get("traceparent")): ledger.submit(...)``
    """
    parsed = TraceParent.parse(traceparent)
    token = _continuing.set(None if parsed is None else parsed.text())
    try:
        yield
    finally:
        _continuing.reset(token)


def current_traceparent() -> str | None:
    """The traceparent runs created now continue: one given by ``continuing``, else the
    one of the caller's current OpenTelemetry span, if it has a valid one.

    OpenTelemetry is never imported here: a program that has not imported it has no
    current span (and pays nothing).
    """
    given = _continuing.get()
    if given is not None:
        return given
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return TraceParent(context.trace_id, context.span_id,
                       bool(context.trace_flags & 1)).text()


__all__ = ["RunTrace", "TraceParent", "attempt_span_id", "continuing", "current_traceparent",
           "run_span_id", "usage_span_id"]
