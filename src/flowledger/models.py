"""The records a Ledger returns: frozen dataclasses built from store rows."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any


class RunStatus(enum.StrEnum):
    """Where a run is: ``pending → running → completed | failed | cancelled``;
    ``paused`` (by ``Ledger.pause``) until it is resumed; ``waiting`` (at ``fl.sleep`` or
    ``fl.wait_for_event``, holding no worker) until its timer or event wakes it."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    WAITING = "waiting"

    @property
    def finished(self) -> bool:
        """True for the final states: completed, failed, cancelled."""
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepStatus(enum.StrEnum):
    """Where a step is: ``running → completed | failed | skipped``; a sleep or event
    wait whose run is suspended is ``waiting``."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAITING = "waiting"


class AttemptOutcome(enum.StrEnum):
    """How one attempt of a step ended.

    ``interrupted``: the run ended, or the process executing it died or lost its lease,
    while the attempt ran. ``waiting``: a sleep or event wait whose run is suspended at
    it. ``unrecorded``: the attempt happened before attempt history
    was kept (databases older than flowledger 0.2).
    """

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"
    UNRECORDED = "unrecorded"


def usd(value: float | None) -> float | None:
    """A sum of costs without float noise (0.41249999999999976 → 0.4125): prices have at
    most a handful of decimals, sums of them no more than ten."""
    return None if value is None else round(value, 10)


def from_micros(value: int | None) -> datetime | None:
    """Store timestamps are integer microseconds since the epoch (UTC)."""
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


def duration_between(start: int | None, end: int | None) -> timedelta | None:
    if start is None or end is None:
        return None
    return timedelta(microseconds=end - start)


@dataclass(frozen=True)
class ErrorInfo:
    """An error as recorded: exception type (``module.Qualname``), message, traceback."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ErrorInfo | None:
        if not data:
            return None
        return cls(str(data.get("type", "")), str(data.get("message", "")),
                   str(data.get("traceback", "")))


@dataclass(frozen=True)
class Attempt:
    """One try of a step: when it ran, how it ended, and its error.

    ``retry_at`` is when the next attempt was due after this one failed (None when no
    retry followed it). Example::

        for attempt in ledger.get(run_id).steps[0].attempt_history:
            print(attempt.number, attempt.outcome, attempt.error and attempt.error.message)
    """

    number: int
    outcome: AttemptOutcome
    started_at: datetime | None
    completed_at: datetime | None
    duration: timedelta | None
    error: ErrorInfo | None
    interrupted: bool
    retry_at: datetime | None = None


@dataclass(frozen=True)
class StepCounts:
    """How many of a run's steps are in each state (child runs not included)."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def running(self) -> int:
        return self.total - self.completed - self.failed - self.skipped


@dataclass(frozen=True)
class Usage:
    """One recorded LLM call: model, tokens, and its USD cost (None if the model is unknown)."""

    model: str
    provider: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    prices_version: str
    recorded_at: datetime | None
    # Served from the LLM response cache: no tokens were spent, the cost is zero.
    cache_hit: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class UsageTotals:
    """Usage summed over steps (and child runs). ``cost_usd`` sums the priced calls;
    ``unpriced_calls`` counts calls whose model had no known price."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    unpriced_calls: int = 0
    models: tuple[str, ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, records: Sequence[Usage]) -> UsageTotals:
        priced = [u.cost_usd for u in records if u.cost_usd is not None]
        return cls(len(records), sum(u.input_tokens for u in records),
                   sum(u.output_tokens for u in records),
                   sum(u.cached_input_tokens for u in records),
                   sum(u.reasoning_tokens for u in records),
                   usd(sum(priced)) if priced else None, len(records) - len(priced),
                   tuple(sorted({u.model for u in records})))


@dataclass(frozen=True)
class UsageGroup:
    """Usage totals of one workflow, model or owner (``Ledger.usage``)."""

    key: str
    totals: UsageTotals

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **record_to_dict(self.totals)}


@dataclass(frozen=True)
class ArtifactInfo:
    """An artifact's reference: key, digest, size, media type, producing step, time."""

    run_id: str
    key: str
    digest: str
    size: int
    media_type: str
    position: int
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "key": self.key, "digest": self.digest,
                "size": self.size, "media_type": self.media_type, "position": self.position,
                "created_at": self.created_at.isoformat() if self.created_at else None}


@dataclass(frozen=True)
class Step:
    """One recorded step execution, identified by its run and position (1-based)."""

    run_id: str
    position: int
    name: str
    status: StepStatus
    attempts: int
    input: Any
    output: Any
    error: ErrorInfo | None
    started_at: datetime | None
    completed_at: datetime | None
    duration: timedelta | None
    child_run_id: str | None = None
    usage: tuple[Usage, ...] = ()
    #: Every attempt, oldest first (``attempts`` is their count).
    attempt_history: tuple[Attempt, ...] = ()
    #: Read with a preview size (``Ledger.get(preview=...)``): the value is then the start
    #: of its serialized text, and ``Ledger.step`` reads it whole.
    input_truncated: bool = False
    output_truncated: bool = False
    #: Redaction changed its recorded output or context values (``Ledger(redact=...)``):
    #: a resume executes it again instead of replaying them (docs/redaction.md).
    redacted: bool = False

    @property
    def usage_totals(self) -> UsageTotals:
        return UsageTotals.of(self.usage)

    @property
    def idempotency_key(self) -> str:
        """Stable key for external side effects: ``<run_id>:<position>``."""
        return f"{self.run_id}:{self.position}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps ISO 8601, durations in seconds)."""
        return record_to_dict(self)


@dataclass(frozen=True)
class Run:
    """One execution of a workflow, with its steps when fetched by ``Ledger.get``.

    Example::

        run = ledger.get(run_id)
        print(run.status, run.duration, [s.name for s in run.steps])
    """

    id: str
    workflow: str
    version: str
    entrypoint: str
    owner: str
    tags: tuple[str, ...]
    status: RunStatus
    inputs: Any
    output: Any
    error: ErrorInfo | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration: timedelta | None
    counts: StepCounts
    recovery_attempts: int
    parent_id: str | None
    forked_from: str | None
    forked_from_position: int | None
    resumed_at: datetime | None
    resumed_from_position: int | None
    deadline_at: datetime | None
    steps: tuple[Step, ...] = field(default=())
    usage: UsageTotals | None = None  # with ``get``: this run's steps and its child runs
    context: dict[str, Any] = field(default_factory=dict)  # with ``get``
    queue: str | None = None  # submitted runs: the queue, priority and when it is due
    priority: int = 0
    scheduled_at: datetime | None = None
    idempotency_key: str | None = None
    #: The process executing it (``host:pid:start``), and until when a worker holds it.
    executor: str | None = None
    lease_expires_at: datetime | None = None
    #: For a run marked running whose executor is known to be gone: why, and what to do.
    stalled: str | None = None
    #: With ``get``: the artifacts the run saved, by key.
    artifacts: tuple[ArtifactInfo, ...] = ()
    #: With ``get``: a token that changes whenever ``get`` would read back differently
    #: (``Ledger.revision`` reads it alone, cheaply).
    revision: str | None = None
    #: A paused run: when, why and by whom (``Ledger.pause``).
    paused_at: datetime | None = None
    pause_reason: str | None = None
    paused_by: str | None = None
    #: A waiting run: the event it waits for (None: a sleep), and when it wakes (the
    #: sleep's end, or the wait's timeout).
    waiting_for: str | None = None
    wake_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with its steps (timestamps ISO 8601, durations in seconds).

        Example: ``json.dumps(ledger.get(run_id).to_dict())``
        """
        return record_to_dict(self)


@dataclass(frozen=True)
class SummaryPage:
    """One page of ``Ledger.summaries()``: run summaries as JSON-ready dicts (the shape
    of the HTTP API's run list), the cursor of the next page, and a token that changes
    whenever this page would read back differently (``Ledger.summaries_revision``).

    Example: ``[s["status"] for s in ledger.summaries(limit=10).runs]``
    """

    runs: list[dict[str, Any]]
    next_cursor: str | None
    revision: str

    def __iter__(self) -> Any:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)


@dataclass(frozen=True)
class RunPage:
    """One page of ``Ledger.runs()``; pass ``next_cursor`` back to get the next page."""

    runs: tuple[Run, ...]
    next_cursor: str | None

    def __iter__(self) -> Any:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_AS_IS = frozenset({str, int, bool, type(None)})


def record_to_dict(record: Any) -> dict[str, Any]:
    """A record (dataclass) as a JSON-ready dict: its fields, values converted."""
    kind = type(record)
    names = _FIELD_NAMES.get(kind)
    if names is None:  # worked out once per class: a run page converts thousands
        names = _FIELD_NAMES[kind] = tuple(item.name for item in fields(record))
    return {name: _value(getattr(record, name)) for name in names}


def to_jsonable(value: Any) -> Any:
    """Strict-JSON form: NaN and ±Infinity, which JSON cannot hold, become strings."""
    return _value(value)


def _value(value: Any) -> Any:
    kind = type(value)
    if kind in _AS_IS:  # the common case first (exact types: an enum is not a str here)
        return value
    convert = _CONVERTERS.get(kind)
    if convert is None:
        convert = _CONVERTERS[kind] = _converter(kind)
    return convert(value)


def _finite(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _converter(kind: type) -> Callable[[Any], Any]:
    """How values of one type become JSON-ready (chosen once per type)."""
    if issubclass(kind, enum.Enum):
        return lambda value: value.value
    if issubclass(kind, float):
        return _finite
    if issubclass(kind, dict):
        return lambda value: {key: _value(item) for key, item in value.items()}
    if issubclass(kind, datetime):
        return datetime.isoformat
    if issubclass(kind, timedelta):
        return timedelta.total_seconds
    if issubclass(kind, tuple | list):
        return lambda value: [_value(item) for item in value]
    if hasattr(kind, "__dataclass_fields__"):
        return record_to_dict
    return lambda value: value


_CONVERTERS: dict[type, Callable[[Any], Any]] = {}


__all__ = [
    "Attempt",
    "AttemptOutcome",
    "ErrorInfo",
    "Run",
    "RunPage",
    "RunStatus",
    "Step",
    "StepCounts",
    "StepStatus",
    "Usage",
    "UsageGroup",
    "UsageTotals",
    "duration_between",
    "record_to_dict",
    "from_micros",
]
