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

from __future__ import annotations

from . import artifacts, context
from .artifacts import ArtifactInfo, RunArtifacts
from .concurrency import StepPool, map_steps
from .errors import (
    AmbiguousRunId,
    ArtifactNotFound,
    ConfigurationError,
    DatabaseNotFound,
    DeadlineExceeded,
    FlowledgerError,
    InvalidCursor,
    NonDeterminismError,
    NonRetryable,
    NotInRun,
    PayloadTooLarge,
    RunAlreadyRunning,
    RunCancelled,
    RunFailed,
    RunNotFound,
    ScheduleNotFound,
    SerializationError,
    SkipStep,
    StepNotFound,
    StepTimeout,
    StoreError,
    StoreFull,
    StoreUnavailable,
    TokenNotFound,
    WorkerStopping,
    WorkflowNotFound,
    WorkflowVersionMismatch,
)
from .events import EventBatch, RunEvent
from .executor import StepInfo, current_run_id, current_step
from .ledger import Ledger, RunHandle
from .models import (
    Attempt,
    AttemptOutcome,
    ErrorInfo,
    Run,
    RunPage,
    RunStatus,
    Step,
    StepCounts,
    StepStatus,
    Usage,
    UsageGroup,
    UsageTotals,
)
from .queueing import QueueInfo, WorkerInfo
from .reports import RunDiff, Stats, StepChange, StepStats, WorkflowStats
from .retention import PurgeReport, read_archive
from .schedules import Schedule, schedule
from .serialization import JsonSerializer, Serializer
from .tokens import NewToken, TokenInfo
from .usage import record_anthropic_usage, record_openai_usage, record_usage
from .worker import Worker
from .workflow import RetryPolicy, step, workflow

__version__ = "0.1.0"

__all__ = [
    "TokenNotFound",
    "TokenInfo",
    "NewToken",
    "RunEvent",
    "EventBatch",
    "AmbiguousRunId",
    "ArtifactInfo",
    "ArtifactNotFound",
    "Attempt",
    "AttemptOutcome",
    "ConfigurationError",
    "DatabaseNotFound",
    "DeadlineExceeded",
    "ErrorInfo",
    "FlowledgerError",
    "InvalidCursor",
    "JsonSerializer",
    "Ledger",
    "NonDeterminismError",
    "NonRetryable",
    "NotInRun",
    "PayloadTooLarge",
    "PurgeReport",
    "QueueInfo",
    "RetryPolicy",
    "Run",
    "RunAlreadyRunning",
    "RunCancelled",
    "RunDiff",
    "RunFailed",
    "RunArtifacts",
    "RunHandle",
    "RunNotFound",
    "RunPage",
    "RunStatus",
    "Schedule",
    "ScheduleNotFound",
    "SerializationError",
    "Serializer",
    "SkipStep",
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
    "Usage",
    "UsageGroup",
    "UsageTotals",
    "Worker",
    "WorkerInfo",
    "WorkerStopping",
    "WorkflowNotFound",
    "WorkflowStats",
    "WorkflowVersionMismatch",
    "__version__",
    "artifacts",
    "context",
    "current_run_id",
    "current_step",
    "map_steps",
    "read_archive",
    "record_anthropic_usage",
    "record_openai_usage",
    "record_usage",
    "schedule",
    "step",
    "workflow",
]
