"""Every record that crosses the storage boundary, in one place: the rows the store
reads and writes (``SqlStore`` speaks SQL; nothing else does). Rows carry payloads as
serialized text; the Ledger decodes them with the run's serializer. Run ids cross this
boundary as ``uuid.UUID``; timestamps are integer microseconds (UTC).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RunRow:
    id: uuid.UUID
    workflow: str
    version: str
    entrypoint: str
    owner: str
    status: str
    serializer: str
    inputs: str | None
    output: str | None
    error: str | None
    created_at: int
    started_at: int | None
    completed_at: int | None
    deadline_at: int | None
    total_steps: int
    completed_steps: int
    failed_steps: int
    skipped_steps: int
    recovery_attempts: int
    parent_id: uuid.UUID | None
    forked_from: uuid.UUID | None
    forked_from_position: int | None
    resumed_at: int | None
    resumed_from_position: int | None
    executor: str | None
    lease_token: str | None
    tags: tuple[str, ...] = ()
    queue: str | None = None
    priority: int = 0
    scheduled_at: int | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    lease_expires_at: int | None = None
    revision: int = 0
    paused_at: int | None = None
    pause_reason: str | None = None
    paused_by: str | None = None
    wake_at: int | None = None
    waiting_for: str | None = None
    traceparent: str | None = None

    @classmethod
    def from_row(cls, row: Any, tags: tuple[str, ...]) -> RunRow:
        """A ``flowledger_runs`` row (all its columns) and the run's tags."""
        m = row._mapping
        return cls(**{name: m[name] for name in RUN_COLUMNS}, tags=tags)


@dataclass(slots=True)
class EventRow:
    """An event sent to a run (``flowledger_run_events``)."""

    id: int
    run_id: uuid.UUID
    name: str
    payload: str | None
    sent_at: int
    consumed_position: int | None  # the wait that took it
    consumed_at: int | None
    error: str | None  # why the wait refused it


@dataclass(slots=True)
class StepRow:
    run_id: uuid.UUID
    position: int
    name: str
    status: str
    attempts: int
    input: str | None
    output: str | None
    error: str | None
    started_at: int | None
    completed_at: int | None
    child_run_id: uuid.UUID | None
    context: str | None = None  # JSON: name -> serialized value, what this step set
    #: Redaction changed its output or context: executed again on resume, not replayed.
    redacted: bool = False
    #: When a read cut the input or output to a preview: its full length (characters).
    input_length: int | None = None
    output_length: int | None = None


@dataclass(slots=True)
class AttemptRow:
    """An attempt that did not end its step successfully (``flowledger_attempts``)."""

    run_id: uuid.UUID
    position: int
    attempt: int
    status: str  # failed | interrupted
    started_at: int | None
    completed_at: int | None
    error: str | None
    retry_at: int | None


@dataclass(slots=True)
class RunRead:
    """Everything reading a run returns, from one snapshot of the database: the run, its
    steps (payloads maybe cut to previews), attempt history, context (name, serialized
    value), artifacts, descendants (their revisions) and the LLM calls of the run and
    its descendants."""

    run: RunRow
    steps: list[StepRow]
    attempts: list[AttemptRow]
    context: list[tuple[str, str | None]]
    artifacts: list[ArtifactRow]
    descendants: list[Revision]
    usage: list[UsageRow]


@dataclass(slots=True)
class Revision:
    """What says whether a run reads back differently: its revision, and what its
    ``stalled`` note depends on (a run and each descendant, one row each)."""

    id: uuid.UUID
    owner: str
    revision: int
    status: str
    lease_expires_at: int | None
    executor: str | None
    parent_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class StepMarks:
    """What every step write changes: counts (steps, attempts, completed, failed,
    skipped) and the latest start and end (microseconds; 0 when none)."""

    steps: int = 0
    attempts: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    last_started: int = 0
    last_completed: int = 0

    @classmethod
    def of(cls, steps: Sequence[StepRow]) -> StepMarks:
        """The marks of steps already read (the same as the store's aggregate)."""
        statuses = [row.status for row in steps]
        return cls(len(steps), sum(row.attempts for row in steps),
                   statuses.count("completed"), statuses.count("failed"),
                   statuses.count("skipped"),
                   max((row.started_at or 0 for row in steps), default=0),
                   max((row.completed_at or 0 for row in steps), default=0))


@dataclass(slots=True)
class UsageRow:
    run_id: uuid.UUID
    position: int
    model: str
    provider: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    prices_version: str
    recorded_at: int
    cache_hit: bool = False


@dataclass(slots=True)
class LogRow:
    """What one step attempt logged (``flowledger_step_logs``): ``records`` is a JSON
    array; ``dropped`` counts the records left out past the bound."""

    position: int
    name: str
    attempt: int
    records: str
    dropped: int


@dataclass(slots=True)
class ArtifactRow:
    run_id: uuid.UUID
    key: str
    owner: str
    digest: str
    size: int
    media_type: str
    position: int
    created_at: int


@dataclass(slots=True)
class NewRun:
    """Everything recorded when a run is created (status ``running`` or ``pending``)."""

    id: uuid.UUID
    workflow: str
    version: str
    entrypoint: str
    owner: str
    status: str
    serializer: str
    inputs: str | None
    created_at: int
    executor: str | None
    lease_token: str | None
    deadline_at: int | None = None
    parent_id: uuid.UUID | None = None
    forked_from: uuid.UUID | None = None
    forked_from_position: int | None = None
    tags: Sequence[str] = field(default_factory=tuple)
    queue: str | None = None
    priority: int = 0
    scheduled_at: int | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    # A spec workflow's text, stored (once per owner and digest) with the run.
    spec_text: str | None = None
    # The W3C traceparent of the span the run's trace continues (telemetry.md).
    traceparent: str | None = None


@dataclass(slots=True)
class SpecRow:
    """A stored workflow spec text; ``registered_at`` is set when it was registered."""

    owner: str
    digest: str
    name: str
    version: str
    text: str
    created_at: int
    registered_at: int | None


@dataclass(slots=True)
class RunFilter:
    owner: str | None = None
    status: Sequence[str] = ()
    workflow: str | None = None
    tag: str | None = None
    since: int | None = None
    until: int | None = None
    parent_id: uuid.UUID | None = None
    # Only runs at the top of a tree: no parent, or a parent no longer recorded.
    roots: bool = False
    queue: str | None = None
    # The process that executes (or last executed) the run: ``host:pid:start`` exactly,
    # or a prefix of it ending with ``:`` (``host:`` is every process of that host).
    executor: str | None = None
    forked_from: uuid.UUID | None = None
    # Runs that completed before this (µs): what retention policies delete.
    completed_before: int | None = None


# -- queues and workers ---------------------------------------------------------------
@dataclass(slots=True)
class Claim:
    """A run a worker now holds; ``fresh`` when it never started (nothing to replay)."""

    row: RunRow
    token: str
    fresh: bool
    taken_over: bool = False  # its previous worker was lost (the lease had expired)


@dataclass(slots=True)
class ClaimResult:
    claimed: list[Claim]
    given_up: list[uuid.UUID]  # leases expired too often: failed instead of claimed
    next_due: int | None  # when the earliest delayed run in these queues becomes due


@dataclass(slots=True)
class WorkerRow:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    state: str
    started_at: int
    heartbeat_at: int
    held: int = 0
    lease_us: int | None = None


@dataclass(slots=True)
class QueueRow:
    name: str
    concurrency: int | None
    key_concurrency: int | None
    ready: int = 0
    delayed: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    paused_at: int | None = None
    pause_reason: str | None = None
    # Claim rates as (units, period in microseconds); None: no rate.
    rate: tuple[int, int] | None = None
    key_rate: tuple[int, int] | None = None


@dataclass(slots=True)
class ScheduleRow:
    name: str
    owner: str
    workflow: str
    version: str
    entrypoint: str
    serializer: str
    inputs: str | None
    cron: str
    queue: str
    priority: int
    catch_up: bool
    next_fire_at: int
    last_fired_at: int | None = None
    last_run_id: uuid.UUID | None = None
    created_at: int = 0
    timezone: str | None = None  # NULL: UTC
    paused_at: int | None = None


# -- API tokens --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    owner: str
    admin: bool
    note: str | None
    created_at: int
    last_used_at: int | None
    revoked_at: int | None



# -- webhooks ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: str
    owner: str
    url: str
    events: str  # JSON list of event names
    secret: str
    enabled: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    webhook_id: str
    owner: str
    event: str
    run_id: uuid.UUID
    payload: str  # JSON: the run as it was when the event happened
    status: str  # pending | delivering | delivered | failed
    attempts: int
    next_attempt_at: int | None
    created_at: int
    redelivered_at: int | None
    delivered_at: int | None
    last_status_code: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery a dispatcher claimed (with ``token``), and where and how to send it."""

    delivery: DeliveryRow
    url: str
    secret: str
    token: str


@dataclass(frozen=True, slots=True)
class DeliveryAttemptRow:
    delivery_id: str
    attempt: int
    at: int
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response: str | None

# -- progress (event streams) -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StepProgress:
    position: int
    name: str
    status: str
    attempts: int
    started_at: int | None
    completed_at: int | None
    child_run_id: uuid.UUID | None
    error: str | None = None  # the latest attempt's, when the step failed


@dataclass(frozen=True, slots=True)
class RunProgress:
    id: uuid.UUID
    status: str
    started_at: int | None
    completed_at: int | None
    resumed_at: int | None
    resumed_from_position: int | None
    steps: tuple[StepProgress, ...]
    # The attempts kept in the history (failed or interrupted ones), by position.
    attempts: tuple[AttemptRow, ...] = ()
    error: str | None = None  # the run's, once it failed
    paused_at: int | None = None  # while it is paused: since when, and why
    pause_reason: str | None = None


@dataclass(slots=True)
class RetentionPolicyRow:
    """A retention policy (``flowledger_retention_policies``): ``statuses`` is a
    comma-separated list of final statuses."""

    id: str
    workflow: str | None
    owner: str | None
    statuses: str
    keep_us: int
    archive: str | None
    created_at: int
    updated_at: int


@dataclass(slots=True)
class LeaseHold:
    """A lease this process holds: the duty's name, the holding's token and fence."""

    name: str
    token: str
    fence: int
    expires_at: int


@dataclass(slots=True)
class ArchivedRun:
    """Everything recorded for one run, as text (payloads serialized, not decoded): what
    a retention archive keeps of it and what restoring it writes back. ``context`` rows
    are (name, value, position, updated_at); ``logs`` rows (position, attempt, records,
    dropped, written_at)."""

    run: RunRow
    steps: list[StepRow]
    attempts: list[AttemptRow]
    usage: list[UsageRow]
    context: list[tuple[str, str | None, int, int]]
    artifacts: list[ArtifactRow]
    logs: list[tuple[int, int, str, int, int]]
    events: list[EventRow]
    spec: SpecRow | None = None  # a spec run's text (``spec:<digest>`` entrypoint)


RUN_COLUMNS = tuple(name for name in RunRow.__slots__ if name != "tags")


@dataclass(slots=True)
class RateLimitRow:
    """A named rate limit (``flowledger_rate_limits``, scope ``limit``): ``units`` per
    ``period_us``, ``burst`` units at once; ``tat`` is its bucket (database clock, µs)."""

    name: str
    units: int
    period_us: int
    burst: int
    tat: int
    updated_at: int

