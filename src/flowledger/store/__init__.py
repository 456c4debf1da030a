"""Storage: the only package that speaks SQL."""

from __future__ import annotations

from .base import ArtifactRow, AttemptRow, NewRun, RunFilter, RunRow, StepRow, UsageRow
from .sql import SqlStore

__all__ = ["ArtifactRow", "AttemptRow", "NewRun", "RunFilter", "RunRow", "SqlStore", "StepRow",
           "UsageRow"]
