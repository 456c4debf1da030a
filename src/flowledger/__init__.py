"""flowledger: a durable workflow engine that records every run and step.

Example::

    import flowledger as fl

    @fl.step(retries=3)
    def fetch(n: int) -> dict: ...

    @fl.workflow(name="triage", version="1")
    def triage(n: int) -> dict:
        return fetch(n)

    output = fl.Ledger().run(triage, 42)
"""

# No ``from __future__ import annotations`` here: it would add an ``annotations`` name to
# the package, and this module annotates nothing that needs it.
import importlib
from typing import TYPE_CHECKING

# The decorators are bound eagerly: the submodule ``flowledger.workflow`` would otherwise
# shadow the ``workflow`` decorator once anything imported it.
from .workflow import RetryPolicy, step, workflow

__version__ = "0.1.0"

# Public names are imported on first use, so ``import flowledger`` (and every CLI call)
# does not pay for SQLAlchemy, pydantic, fsspec and the pricing data until they are needed.
_HOME = {
    "AmbiguousRunId": "errors",
    "ArtifactInfo": "models",
    "ArtifactNotFound": "errors",
    "Attempt": "models",
    "BulkResult": "bulk",
    "AttemptOutcome": "models",
    "ConfigurationError": "errors",
    "DatabaseNotFound": "errors",
    "DeadlineExceeded": "errors",
    "DurationHistogram": "metrics",
    "ErrorInfo": "models",
    "EventBatch": "events",
    "FlowledgerError": "errors",
    "InvalidCursor": "errors",
    "JsonSerializer": "serialization",
    "Ledger": "ledger",
    "MetricsSnapshot": "metrics",
    "NewToken": "api_tokens",
    "NonDeterminismError": "errors",
    "NonRetryable": "errors",
    "NotInRun": "errors",
    "PayloadTooLarge": "errors",
    "PurgeReport": "retention",
    "QueueInfo": "queueing",
    "RateLimit": "ratelimits",
    "RateLimitNotFound": "errors",
    "Redact": "redact",
    "RedactedInputs": "errors",
    "Run": "models",
    "RunAlreadyRunning": "errors",
    "RunArtifacts": "artifacts",
    "RunCancelled": "errors",
    "RunDiff": "reports",
    "RunEvent": "events",
    "RunFailed": "errors",
    "RunHandle": "handle",
    "RunNotFound": "errors",
    "RunPaused": "errors",
    "EventRejected": "errors",
    "RunNotWaitable": "errors",
    "RunWaiting": "errors",
    "WaitTimeout": "errors",
    "SentEvent": "mailbox",
    "AttemptLogs": "steplogs",
    "LogEntry": "steplogs",
    "sleep": "waits",
    "ChildHandle": "children",
    "start_child": "children",
    "gather": "children",
    "gather_async": "children",
    "RunIdConflict": "errors",
    "PayloadKeyMissing": "errors",
    "PayloadTampered": "errors",
    "Keyring": "encryption",
    "SealedPayload": "encryption",
    "KeyStatus": "keyadmin",
    "RotationReport": "keyadmin",
    "ShredReport": "keyadmin",
    "sleep_async": "waits",
    "wait_for_event": "waits",
    "wait_for_event_async": "waits",
    "RunInfo": "runcontext",
    "RunPage": "models",
    "RunStatus": "models",
    "Schedule": "schedules",
    "ScheduleNotFound": "errors",
    "SerializationError": "errors",
    "Serializer": "serialization",
    "SkipStep": "errors",
    "Spec": "specs",
    "SpecError": "specs",
    "SpecInfo": "spec_registry",
    "SpecNotFound": "errors",
    "SpecProblem": "specs",
    "SpecVersionConflict": "errors",
    "Stats": "reports",
    "Step": "models",
    "StepChange": "reports",
    "StepCounts": "models",
    "StepInfo": "runcontext",
    "StepNotFound": "errors",
    "StepPool": "concurrency",
    "StepStats": "reports",
    "StepStatus": "models",
    "StepTimeout": "errors",
    "StoreError": "errors",
    "StoreFull": "errors",
    "StoreUnavailable": "errors",
    "SummaryPage": "models",
    "Telemetry": "telemetry",
    "TokenInfo": "api_tokens",
    "TracesExported": "traceexport",
    "TokenNotFound": "errors",
    "Usage": "models",
    "UsageGroup": "models",
    "UsageTotals": "models",
    "Webhook": "webhooks",
    "WebhookAttempt": "webhooks",
    "ArchiveError": "errors",
    "LeaseNotHeld": "errors",
    "RetentionPolicyNotFound": "errors",
    "RetentionPolicy": "retentionpolicies",
    "RetentionReport": "retentionpolicies",
    "RestoreReport": "retentionpolicies",
    "WebhookDelivery": "webhooks",
    "WebhookDispatcher": "webhook_dispatch",
    "WebhookNotFound": "errors",
    "Worker": "worker",
    "WorkerInfo": "queueing",
    "WorkerStopping": "errors",
    "WorkflowNotFound": "errors",
    "WorkflowStats": "reports",
    "WorkflowVersionMismatch": "errors",
    "artifacts": "artifacts",
    "context": "context",
    "current_run": "runcontext",
    "current_run_id": "runcontext",
    "current_step": "runcontext",
    "llm_cache": "llm_cache",
    "load_spec": "specs",
    "map_steps": "concurrency",
    "parse_spec": "specs",
    "read_archive": "retention",
    "redact": "redact",
    "record_anthropic_usage": "usage",
    "record_openai_usage": "usage",
    "record_usage": "usage",
    "schedule": "schedules",
}

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from . import artifacts, context, llm_cache, redact
    from .api_tokens import NewToken, TokenInfo
    from .artifacts import RunArtifacts
    from .bulk import BulkResult
    from .children import ChildHandle, gather, gather_async, start_child
    from .concurrency import StepPool, map_steps
    from .encryption import Keyring, SealedPayload
    from .errors import (
        AmbiguousRunId,
        ArchiveError,
        ArtifactNotFound,
        ConfigurationError,
        DatabaseNotFound,
        DeadlineExceeded,
        EventRejected,
        FlowledgerError,
        InvalidCursor,
        LeaseNotHeld,
        NonDeterminismError,
        NonRetryable,
        NotInRun,
        PayloadKeyMissing,
        PayloadTampered,
        PayloadTooLarge,
        RateLimitNotFound,
        RedactedInputs,
        RetentionPolicyNotFound,
        RunAlreadyRunning,
        RunCancelled,
        RunFailed,
        RunIdConflict,
        RunNotFound,
        RunNotWaitable,
        RunPaused,
        RunWaiting,
        ScheduleNotFound,
        SerializationError,
        SkipStep,
        SpecNotFound,
        SpecVersionConflict,
        StepNotFound,
        StepTimeout,
        StoreError,
        StoreFull,
        StoreUnavailable,
        TokenNotFound,
        WaitTimeout,
        WebhookNotFound,
        WorkerStopping,
        WorkflowNotFound,
        WorkflowVersionMismatch,
    )
    from .events import EventBatch, RunEvent
    from .handle import RunHandle
    from .keyadmin import KeyStatus, RotationReport, ShredReport
    from .ledger import Ledger
    from .mailbox import SentEvent
    from .metrics import DurationHistogram, MetricsSnapshot
    from .models import (
        ArtifactInfo,
        Attempt,
        AttemptOutcome,
        ErrorInfo,
        Run,
        RunPage,
        RunStatus,
        Step,
        StepCounts,
        StepStatus,
        SummaryPage,
        Usage,
        UsageGroup,
        UsageTotals,
    )
    from .queueing import QueueInfo, WorkerInfo
    from .ratelimits import RateLimit
    from .redact import Redact
    from .reports import RunDiff, Stats, StepChange, StepStats, WorkflowStats
    from .retention import PurgeReport, read_archive
    from .retentionpolicies import RestoreReport, RetentionPolicy, RetentionReport
    from .runcontext import RunInfo, StepInfo, current_run, current_run_id, current_step
    from .schedules import Schedule, schedule
    from .serialization import JsonSerializer, Serializer
    from .spec_registry import SpecInfo
    from .specs import Spec, SpecError, SpecProblem, load_spec, parse_spec
    from .steplogs import AttemptLogs, LogEntry
    from .telemetry import Telemetry
    from .traceexport import TracesExported
    from .usage import record_anthropic_usage, record_openai_usage, record_usage
    from .waits import sleep, sleep_async, wait_for_event, wait_for_event_async
    from .webhook_dispatch import WebhookDispatcher
    from .webhooks import Webhook, WebhookAttempt, WebhookDelivery
    from .worker import Worker
    from .workflow import RetryPolicy, step, workflow


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'flowledger' has no attribute {name!r}")
    module = importlib.import_module(f".{home}", __name__)
    value = module if home == name else getattr(module, name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ArchiveError",
    "LeaseNotHeld",
    "RestoreReport",
    "RetentionPolicy",
    "RetentionPolicyNotFound",
    "RetentionReport",
    "KeyStatus",
    "Keyring",
    "PayloadKeyMissing",
    "PayloadTampered",
    "RotationReport",
    "SealedPayload",
    "ShredReport",
    "AttemptLogs",
    "ChildHandle",
    "start_child",
    "gather",
    "gather_async",
    "RunIdConflict",
    "LogEntry",
    "TokenNotFound",
    "Telemetry",
    "TokenInfo",
    "TracesExported",
    "NewToken",
    "RunEvent",
    "EventBatch",
    "AmbiguousRunId",
    "ArtifactInfo",
    "ArtifactNotFound",
    "Attempt",
    "AttemptOutcome",
    "BulkResult",
    "ConfigurationError",
    "DatabaseNotFound",
    "DeadlineExceeded",
    "DurationHistogram",
    "ErrorInfo",
    "FlowledgerError",
    "InvalidCursor",
    "JsonSerializer",
    "Ledger",
    "MetricsSnapshot",
    "NonDeterminismError",
    "NonRetryable",
    "NotInRun",
    "PayloadTooLarge",
    "PurgeReport",
    "QueueInfo",
    "RateLimit",
    "RateLimitNotFound",
    "Redact",
    "RedactedInputs",
    "RetryPolicy",
    "Run",
    "RunAlreadyRunning",
    "RunCancelled",
    "RunDiff",
    "RunFailed",
    "RunArtifacts",
    "RunHandle",
    "RunNotFound",
    "RunPaused",
    "EventRejected",
    "RunNotWaitable",
    "RunWaiting",
    "WaitTimeout",
    "SentEvent",
    "sleep",
    "sleep_async",
    "wait_for_event",
    "wait_for_event_async",
    "RunInfo",
    "RunPage",
    "RunStatus",
    "Schedule",
    "ScheduleNotFound",
    "SerializationError",
    "Serializer",
    "SkipStep",
    "Spec",
    "SpecError",
    "SpecInfo",
    "SpecNotFound",
    "SpecProblem",
    "SpecVersionConflict",
    "Stats",
    "Step",
    "StepChange",
    "StepCounts",
    "StepInfo",
    "StepNotFound",
    "StepPool",
    "StepStats",
    "StepStatus",
    "StepTimeout",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "SummaryPage",
    "Usage",
    "UsageGroup",
    "UsageTotals",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDispatcher",
    "WebhookNotFound",
    "Worker",
    "WorkerInfo",
    "WorkerStopping",
    "WorkflowNotFound",
    "WorkflowStats",
    "WorkflowVersionMismatch",
    "__version__",
    "artifacts",
    "context",
    "current_run",
    "current_run_id",
    "current_step",
    "llm_cache",
    "load_spec",
    "map_steps",
    "parse_spec",
    "read_archive",
    "redact",
    "record_anthropic_usage",
    "record_openai_usage",
    "record_usage",
    "schedule",
    "step",
    "workflow",
]
