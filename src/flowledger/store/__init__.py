"""Storage: the only package that speaks SQL.

What the rest of flowledger uses is exported here: the store (``SqlStore``, and
``SpoolingStore`` for best-effort persistence), the rows it reads and writes
(``rows.py``), and the few backend facts callers need. The SQL itself is in
``statements/``; ``schema.py`` declares the tables.
"""

from __future__ import annotations

from .core import SPEC_ENTRYPOINT
from .dialects import Durability, Listener
from .metrics import Bounds, MetricRows
from .migrate import HEAD, head_revision
from .rows import (
    ArchivedRun,
    ArtifactRow,
    AttemptRow,
    Claim,
    ClaimResult,
    DeliveryAttemptRow,
    DeliveryRow,
    DueDelivery,
    EventRow,
    LeaseHold,
    LogRow,
    NewRun,
    QueueRow,
    RateLimitRow,
    RetentionPolicyRow,
    Revision,
    RunFilter,
    RunProgress,
    RunRead,
    RunRow,
    ScheduleRow,
    SpecRow,
    StepMarks,
    StepProgress,
    StepRow,
    TokenRow,
    UsageRow,
    WebhookRow,
    WorkerRow,
)
from .sealing import NO_SEALING, NoSealing, Sealing, rewrite_parts
from .spool import SpoolingStore
from .sql import SqlStore
from .statements.keys import SealedColumn

__all__ = ["HEAD", "NO_SEALING", "SPEC_ENTRYPOINT", "ArchivedRun", "ArtifactRow",
           "AttemptRow", "Bounds", "Claim", "ClaimResult", "DeliveryAttemptRow",
           "DeliveryRow", "DueDelivery", "Durability", "EventRow", "LeaseHold", "Listener",
           "LogRow", "MetricRows", "NewRun", "NoSealing", "QueueRow", "RateLimitRow",
           "RetentionPolicyRow", "Revision", "RunFilter", "RunProgress", "RunRead", "RunRow",
           "ScheduleRow", "SealedColumn", "Sealing", "SpecRow", "SpoolingStore", "SqlStore",
           "StepMarks", "StepProgress", "StepRow", "TokenRow", "UsageRow", "WebhookRow",
           "WorkerRow", "head_revision", "rewrite_parts"]
