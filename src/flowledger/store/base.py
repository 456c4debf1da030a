"""What the rest of flowledger needs from storage: domain operations, not SQL.

Rows carry payloads as serialized text; the Ledger decodes them with the run's
serializer. Run ids cross this boundary as ``uuid.UUID``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


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


@dataclass(slots=True)
class RunFilter:
    owner: str | None = None
    status: Sequence[str] = ()
    workflow: str | None = None
    tag: str | None = None
    since: int | None = None
    until: int | None = None
    parent_id: uuid.UUID | None = None


class Store(Protocol):
    """The storage operations; ``SqlStore`` implements them for SQLite and PostgreSQL."""

    def create_run(self, run: NewRun, *, copy_steps_before: int | None = None) -> None: ...

    def begin_step(self, run_id: uuid.UUID, token: str, position: int, name: str,
                   input_text: str | None, now: int,
                   child: NewRun | None = None) -> bool: ...

    def finish_step(self, run_id: uuid.UUID, token: str, position: int, status: str,
                    output_text: str | None, error_text: str | None, now: int) -> bool: ...

    def note_step_error(self, run_id: uuid.UUID, token: str, position: int,
                        error_text: str) -> None: ...

    def finish_run(self, run_id: uuid.UUID, token: str, status: str, output_text: str | None,
                   error_text: str | None, now: int) -> bool: ...

    def cancel_run(self, run_id: uuid.UUID, owner: str | None, now: int) -> bool | None: ...

    def claim_run(self, run_id: uuid.UUID, expected_token: str | None, new_token: str,
                  executor: str, now: int, resumed_from: int | None) -> bool: ...

    def get_run(self, run_id: uuid.UUID, owner: str | None) -> RunRow | None: ...

    def get_steps(self, run_id: uuid.UUID) -> list[StepRow]: ...

    def list_runs(self, flt: RunFilter, limit: int,
                  before_id: uuid.UUID | None) -> list[RunRow]: ...

    def live_step_counts(
        self, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[int, int, int, int]]: ...

    def running_runs(self, host_prefix: str) -> list[RunRow]: ...

    def close(self) -> None: ...
