"""Request bodies and answers of the HTTP API, as pydantic models: they define the
OpenAPI document. Answers are built from the records' ``to_dict()`` forms, which these
models describe field for field (schemathesis checks every answer against them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatusName = Literal["pending", "running", "completed", "failed", "cancelled", "paused",
                        "waiting"]
StepStatusName = Literal["running", "completed", "failed", "skipped", "waiting"]


class SpecProblemOut(BaseModel):
    line: int
    column: int
    path: str
    message: str


class Problem(BaseModel):
    """Every error answer: a short code and a readable message."""

    error: str = Field(examples=["not_found"])
    message: str = Field(examples=["run 0190f… not found"])
    problems: list[SpecProblemOut] | None = Field(
        None, description="An invalid spec's problems, each with its place in the text.")


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict,
                                   description="The workflow's arguments by name.")
    tags: list[str] = Field(default_factory=list, max_length=100)
    queue: str = Field("default", min_length=1, max_length=200)
    priority: int = Field(0, ge=-1_000_000, le=1_000_000,
                          description="Higher runs first; then oldest first.")
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=200,
        description="A second start with the same key returns the first run (also "
                    "accepted as the Idempotency-Key header).")
    concurrency_key: str | None = Field(None, min_length=1, max_length=200)
    delay_seconds: float = Field(0, ge=0, le=366 * 86400)
    run_id: str | None = Field(
        None, min_length=1, max_length=64,
        description="The run's id (a UUID), chosen by the caller: a second start with it "
                    "returns that run (200); a run of another workflow has it: 409.")


class RunAccepted(BaseModel):
    id: str
    workflow: str
    status: RunStatusName
    created: bool = Field(description="False when the idempotency key matched an earlier run.")


class ForkRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_position: int = Field(ge=1, le=10_000_000)
    inputs: dict[str, Any] | None = None
    queue: str = Field("default", min_length=1, max_length=200)


class PauseRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, min_length=1, max_length=500,
                               description="Why (recorded with the pause).")


class ResumeRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(None, min_length=1, max_length=200,
                              description="Queue to resume in; default: the run's own, "
                                          "else 'default'.")


class BulkCancel(BaseModel):
    """Which runs a bulk cancel acts on: the filters of ``GET /runs``."""

    model_config = ConfigDict(extra="forbid")

    status: list[RunStatusName] | None = Field(
        None, description="pending, running, paused, waiting (default: all four).")
    workflow: str | None = Field(None, min_length=1, max_length=200)
    tag: str | None = Field(None, min_length=1, max_length=200)
    queue: str | None = Field(None, min_length=1, max_length=200)
    owner: str | None = Field(None, min_length=1, max_length=200,
                              description="Admin tokens: that owner's runs (other tokens "
                                          "act on their own only).")
    since: str | None = Field(None, max_length=64, description="Created at or after "
                                                               "(ISO 8601, or 2h).")
    until: str | None = Field(None, max_length=64, description="Created before.")
    executor: str | None = Field(None, min_length=1, max_length=300)
    parent: str | None = Field(None, max_length=36, description="A run's children.")
    all: bool = Field(False, description="Act on every run: required when no filter is "
                                         "given.")
    dry_run: bool = Field(False, description="List the runs, change nothing.")


class BulkResultOut(BaseModel):
    action: str
    count: int = Field(description="Runs acted on (or, in a dry run, that would be).")
    dry_run: bool
    run_ids: list[str]
    skipped: list[str] = Field(description="Matched, but finished or changed meanwhile.")


class ActionResult(BaseModel):
    id: str
    status: RunStatusName
    changed: bool = Field(description="False when the run was already in that state.")


class ErrorInfoOut(BaseModel):
    type: str
    message: str
    traceback: str


class CountsOut(BaseModel):
    total: int
    completed: int
    failed: int
    skipped: int


class UsageTotalsOut(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    unpriced_calls: int
    models: list[str]


class UsageOut(BaseModel):
    model: str
    provider: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    prices_version: str
    recorded_at: datetime | None
    cache_hit: bool = False


class AttemptOut(BaseModel):
    number: int
    outcome: Literal["running", "completed", "failed", "skipped", "interrupted",
                     "unrecorded"]
    started_at: datetime | None
    completed_at: datetime | None
    duration: float | None = Field(description="Seconds.")
    error: ErrorInfoOut | None
    interrupted: bool = Field(description="The run ended, or its process died, while "
                                          "this attempt ran.")
    retry_at: datetime | None = Field(description="When the next attempt was due, if "
                                                  "one followed this failure.")


class StepOut(BaseModel):
    run_id: str
    position: int
    name: str
    status: StepStatusName
    attempts: int
    input: Any
    output: Any
    error: ErrorInfoOut | None
    started_at: datetime | None
    completed_at: datetime | None
    duration: float | None = Field(description="Seconds.")
    child_run_id: str | None
    usage: list[UsageOut]
    attempt_history: list[AttemptOut] = Field(description="Every attempt, oldest first.")
    input_truncated: bool = Field(description="In a run answer: the input is the start of "
                                              "its JSON text (the step route has it all).")
    output_truncated: bool = Field(description="In a run answer: the output is the start "
                                               "of its JSON text (the step route has it "
                                               "all).")
    redacted: bool = Field(description="Redaction changed its recorded output or context "
                                       "values: a resume executes it again.")


class LineageOut(BaseModel):
    parent_id: str | None
    forked_from: str | None
    forked_from_position: int | None
    resumed_at: datetime | None
    resumed_from_position: int | None
    recovery_attempts: int


class RunFieldsOut(BaseModel):
    """What a run as listed and a run in full both show."""

    id: str
    workflow: str
    version: str
    owner: str
    tags: list[str]
    status: RunStatusName
    error: ErrorInfoOut | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration: float | None = Field(description="Seconds.")
    counts: CountsOut
    deadline_at: datetime | None
    queue: str | None
    priority: int
    scheduled_at: datetime | None
    idempotency_key: str | None
    executor: str | None = Field(description="The process executing it: host:pid:start.")
    lease_expires_at: datetime | None
    stalled: str | None = Field(description="For a run marked running whose executor is "
                                            "known to be gone: why, and what to do.")
    lineage: LineageOut


class OwnUsageOut(BaseModel):
    calls: int
    tokens: int = Field(description="Input plus output tokens.")
    cost_usd: float | None = Field(description="Null when no call could be priced.")


class RunSummaryOut(RunFieldsOut):
    """A run as listed: no payloads or steps (fetch the run for those)."""

    own_usage: OwnUsageOut = Field(description="The LLM calls of this run's own steps "
                                               "(the run answer's usage adds its child "
                                               "runs').")


class ArtifactOut(BaseModel):
    run_id: str
    key: str
    digest: str
    size: int
    media_type: str
    position: int
    created_at: datetime | None


class RunOut(RunFieldsOut):
    """A run in full: inputs, output, steps, usage totals, context and artifacts."""

    paused_at: datetime | None = Field(None, description="A paused run: since when.")
    pause_reason: str | None = None
    paused_by: str | None = None
    waiting_for: str | None = Field(None, description="A waiting run: the event it waits "
                                                      "for (null: a sleep).")
    wake_at: datetime | None = Field(None, description="A waiting run: when it wakes (the "
                                                       "sleep's end, or the wait's "
                                                       "timeout).")

    entrypoint: str
    inputs: Any
    output: Any
    steps: list[StepOut]
    usage: UsageTotalsOut | None
    context: dict[str, Any]
    artifacts: list[ArtifactOut]
    revision: str = Field(description="Changes whenever this answer would; the ETag "
                                      "carries it.")


class RunPageOut(BaseModel):
    runs: list[RunSummaryOut]
    next_cursor: str | None = Field(description="Pass as cursor= for the next page; null "
                                                "on the last page.")


class ParameterOut(BaseModel):
    name: str
    type: str = Field(description="The annotation, e.g. int, list[str], Issue; any when "
                                  "none.")
    required: bool
    default: Any = Field(None, description="Present when the parameter has a default.")
    variadic: Literal["list", "mapping"] | None = Field(
        None, description="*args (a list) or **kwargs (a mapping).")


class WorkflowOut(BaseModel):
    name: str
    version: str
    parameters: list[ParameterOut]
    kind: str = Field("python", description="python (code) or spec (a registered spec).")


class SpecOut(BaseModel):
    name: str
    version: str
    digest: str
    owner: str
    registered_at: datetime | None
    description: str | None
    steps: list[str]
    inputs: dict[str, Any]
    text: str | None = None


class WorkflowStatsOut(BaseModel):
    workflow: str
    runs: int
    completed: int
    failed: int
    cancelled: int
    active: int
    p50: float | None
    p95: float | None
    tokens: int
    cost_usd: float | None
    success_rate: float | None


class StepStatsOut(BaseModel):
    workflow: str
    name: str
    count: int
    failed: int
    p50: float | None
    p95: float | None
    attempts: int
    failed_attempts: int = Field(description="Attempts that raised, retried or not.")
    retried: int = Field(description="Executions that needed more than one attempt.")
    failure_rate: float
    retry_rate: float


class StatsOut(BaseModel):
    workflows: list[WorkflowStatsOut]
    steps: list[StepStatsOut]


class UsageGroupOut(UsageTotalsOut):
    key: str


class EventErrorOut(BaseModel):
    type: str
    message: str


class EventOut(BaseModel):
    """The ``data`` of each server-sent event (its SSE ``id`` and ``event`` are the same
    id and type)."""

    id: str
    type: str
    run_id: str
    at: datetime | None
    position: int | None
    name: str | None
    attempt: int | None
    child_run_id: str | None
    error: EventErrorOut | None = Field(
        description="step.retrying and step.failed: what the attempt raised.")
    reason: str | None = Field(None, description="run.paused: why, if a reason was given.")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    database: str
    schema_revision: str | None
    process: str = Field(description="The server process that answered (host:pid:start):"
                                     " which one, behind a load balancer or --processes.")


class LogEntryOut(BaseModel):
    """One record a step attempt logged (``logger`` is ``print`` for captured print
    output)."""

    at: datetime
    level: str
    logger: str
    message: str
    exception: str | None = Field(description="The formatted exception, if one was logged.")


class AttemptLogsOut(BaseModel):
    """What one attempt of one step logged."""

    position: int
    step: str
    attempt: int
    records: list[LogEntryOut]
    dropped: int = Field(description="Records left out past the bound.")
    truncated: bool


class SentEventOut(BaseModel):
    """An event sent to a run: delivered to a wait (``consumed_position``), kept until a
    wait takes it, or refused by the wait's model (``error``)."""

    id: int
    run_id: str
    name: str
    payload: Any
    sent_at: datetime
    consumed_position: int | None = Field(description="The wait that received it.")
    consumed_at: datetime | None
    error: str | None = Field(description="Why the wait refused it (never delivered).")
    delivered: bool


WebhookEventName = Literal["run.completed", "run.failed", "run.cancelled", "run.paused"]
DeliveryStatusName = Literal["pending", "delivering", "delivered", "failed"]
DEFAULT_EVENTS: tuple[WebhookEventName, ...] = ("run.completed", "run.failed")


class AddWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000,
                     description="Where to POST deliveries: an http:// or https:// URL "
                                 "on a public address.")
    events: list[WebhookEventName] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS), min_length=1, max_length=4,
        description="The run events to send.")


class ChangeWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="False stops sending (deliveries wait); true "
                                      "sends again.")


class WebhookOut(BaseModel):
    id: str
    owner: str
    url: str
    events: list[WebhookEventName]
    enabled: bool
    created_at: datetime
    secret: str | None = Field(None, description="The signing secret (whsec_…): in the "
                                                 "answer that creates the webhook only.")


class WebhookDeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header of every attempt.")
    webhook_id: str
    owner: str
    event: WebhookEventName
    run_id: str
    status: DeliveryStatusName
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any] = Field(description="The JSON body it sends.")


class WebhookAttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response: str | None = Field(description="The start of the answer's body (at most "
                                             "256 characters).")
