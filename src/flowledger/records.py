"""Store rows to the public records (Run, Step, Usage), decoding payloads."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from . import ids
from .errors import FlowledgerError
from .models import (
    Attempt,
    AttemptOutcome,
    ErrorInfo,
    Run,
    RunStatus,
    Step,
    StepCounts,
    StepStatus,
    Usage,
    UsageTotals,
    duration_between,
    from_micros,
)
from .serialization import Serializer
from .store import AttemptRow, RunRow, StepRow, UsageRow

INTERRUPTED_TYPE = "flowledger.Interrupted"


class Records:
    """Builds Runs and Steps; payloads are decoded as plain values with the serializer
    that wrote them (text is returned as is if the run used another serializer)."""

    def __init__(self, serializer: Serializer,
                 payload: Callable[[uuid.UUID, str, str | None], str | None]) -> None:
        self.serializer = serializer
        self.payload = payload  # follows offloaded outputs to their artifact

    def load(self, row_serializer: str, text: str | None) -> Any:
        if text is None:
            return None
        if row_serializer != self.serializer.name:
            return text
        return self.serializer.loads(text)

    def run(self, row: RunRow, steps: list[StepRow] | None,
            live: tuple[int, int, int, int] | None = None,
            usage: Sequence[UsageRow] | None = None,
            attempts: Sequence[AttemptRow] = ()) -> Run:
        if steps is not None and not RunStatus(row.status).finished:
            live = count_steps(steps)
        counts = StepCounts(*live) if live else StepCounts(
            row.total_steps, row.completed_steps, row.failed_steps, row.skipped_steps)
        run_id = str(row.id)
        by_position: dict[int, list[Usage]] = defaultdict(list)
        totals = None
        if usage is not None:
            records = [usage_record(u) for u in usage]
            for raw, record in zip(usage, records, strict=True):
                if raw.run_id == row.id:
                    by_position[raw.position].append(record)
            totals = UsageTotals.of(records)
        tried: dict[int, list[AttemptRow]] = defaultdict(list)
        for attempt in attempts:
            tried[attempt.position].append(attempt)
        return Run(
            id=run_id, workflow=row.workflow, version=row.version, entrypoint=row.entrypoint,
            owner=row.owner, tags=row.tags, status=RunStatus(row.status),
            inputs=self.load(row.serializer, row.inputs),
            output=self.load(row.serializer, row.output),
            error=ErrorInfo.from_dict(json.loads(row.error)) if row.error else None,
            created_at=from_micros(row.created_at) or datetime.min,
            started_at=from_micros(row.started_at), completed_at=from_micros(row.completed_at),
            duration=duration_between(row.started_at, row.completed_at), counts=counts,
            recovery_attempts=row.recovery_attempts,
            parent_id=str(row.parent_id) if row.parent_id else None,
            forked_from=str(row.forked_from) if row.forked_from else None,
            forked_from_position=row.forked_from_position,
            resumed_at=from_micros(row.resumed_at),
            resumed_from_position=row.resumed_from_position,
            deadline_at=from_micros(row.deadline_at),
            steps=tuple(self.step(run_id, row.serializer, s, by_position.get(s.position, ()),
                                  lambda text: self._payload(row, text),
                                  tried.get(s.position, ()))
                        for s in steps or ()),
            usage=totals, queue=row.queue, priority=row.priority,
            scheduled_at=from_micros(row.scheduled_at), idempotency_key=row.idempotency_key,
            executor=row.executor, lease_expires_at=from_micros(row.lease_expires_at),
            stalled=stalled(row),
        )

    def _payload(self, row: RunRow, text: str | None) -> str | None:
        """An offloaded output's content; if its artifact cannot be read here, a note
        saying so — the rest of the trace stays readable."""
        try:
            return self.payload(row.id, row.owner, text)
        except (OSError, FlowledgerError) as exc:
            key = (text or "").partition(":")[2]
            return json.dumps({"$artifact": key, "unavailable": f"{type(exc).__name__}: {exc}"})

    def step_of(self, run: RunRow, row: StepRow, attempts: Sequence[AttemptRow],
                usage: Sequence[UsageRow]) -> Step:
        """One step read on its own (``Ledger.step``)."""
        return self.step(str(run.id), run.serializer, row,
                         [usage_record(u) for u in usage],
                         lambda text: self._payload(run, text), attempts)

    def step(self, run_id: str, serializer: str, row: StepRow, usage: Sequence[Usage],
             payload: Callable[[str | None], str | None],
             attempts: Sequence[AttemptRow] = ()) -> Step:
        status = StepStatus(row.status)
        error = ErrorInfo.from_dict(json.loads(row.error)) if row.error else None
        started, completed = from_micros(row.started_at), from_micros(row.completed_at)
        duration = duration_between(row.started_at, row.completed_at)
        # The step row is its latest attempt: that record is built from the values above.
        interrupted = error is not None and error.type == INTERRUPTED_TYPE
        latest = Attempt(row.attempts, AttemptOutcome.INTERRUPTED if interrupted
                         else _OUTCOME[status], started, completed, duration, error,
                         interrupted)
        return Step(
            run_id=run_id, position=row.position, name=row.name,
            status=status, attempts=row.attempts,
            input=self.load(serializer, row.input),
            output=self.load(serializer, payload(row.output)),
            error=error, started_at=started, completed_at=completed, duration=duration,
            child_run_id=str(row.child_run_id) if row.child_run_id else None,
            usage=tuple(usage),
            attempt_history=(latest,) if row.attempts == 1 and not attempts
            else attempt_history(row.attempts, latest, attempts),
        )


def attempt_history(count: int, latest: Attempt,
                    recorded: Sequence[AttemptRow]) -> tuple[Attempt, ...]:
    """One record per attempt: the history's rows, the step row (``latest``) for its
    latest attempt when the history has none for it, ``unrecorded`` for gaps in old data."""
    by_number = {attempt.attempt: attempt for attempt in recorded}
    history = []
    for number in range(1, count + 1):
        found = by_number.get(number)
        if found is not None:
            history.append(_attempt(number, found.status, found.started_at,
                                    found.completed_at, found.error, found.retry_at))
        elif number == count:
            history.append(latest)
        else:
            history.append(Attempt(number, AttemptOutcome.UNRECORDED, None, None, None, None,
                                   False))
    return tuple(history)


_OUTCOME = {StepStatus(s.value): AttemptOutcome(s.value) for s in StepStatus}


def _attempt(number: int, status: str, started: int | None, completed: int | None,
             error_text: str | None, retry_at: int | None) -> Attempt:
    error = ErrorInfo.from_dict(json.loads(error_text)) if error_text else None
    outcome = AttemptOutcome(status)
    if error is not None and error.type == INTERRUPTED_TYPE:
        outcome = AttemptOutcome.INTERRUPTED
    return Attempt(number, outcome, from_micros(started), from_micros(completed),
                   duration_between(started, completed), error,
                   outcome is AttemptOutcome.INTERRUPTED, from_micros(retry_at))


def stalled(row: RunRow) -> str | None:
    """Why a run marked running is not advancing, when that is known from here: its
    worker's lease expired, or its process on this host is gone. None otherwise."""
    if row.status != "running":
        return None
    if row.lease_expires_at is not None:
        if row.lease_expires_at < ids.now_us():
            return (f"its worker's lease expired at {from_micros(row.lease_expires_at)}: a "
                    f"worker serving queue {row.queue!r} takes it over (see flowledger "
                    "workers)")
        if ids.is_alive_here(row.executor) is False:
            return (f"its worker (pid {_pid_of(row.executor)}) is gone: a worker serving "
                    f"queue {row.queue!r} takes it over when its lease expires at "
                    f"{from_micros(row.lease_expires_at)}")
        return None
    if ids.is_alive_here(row.executor) is not False:
        return None  # alive, or on another host (nothing can be known from here)
    gone = f"the process that ran it (pid {_pid_of(row.executor)}) is gone"
    if row.parent_id is not None:
        return f"{gone}: it continues when its parent run {row.parent_id} is resumed"
    return (f"{gone}: continue it with `flowledger resume {row.id}` or "
            "`flowledger recover`")


def _pid_of(executor: str | None) -> str:
    parts = (executor or "").split(":")
    return parts[1] if len(parts) > 1 else "?"


def usage_record(row: UsageRow) -> Usage:
    return Usage(row.model, row.provider, row.input_tokens, row.output_tokens,
                 row.cached_input_tokens, row.reasoning_tokens, row.cost_usd,
                 row.prices_version, from_micros(row.recorded_at))


def count_steps(steps: Sequence[StepRow]) -> tuple[int, int, int, int]:
    statuses = [s.status for s in steps]
    return (len(statuses), statuses.count("completed"), statuses.count("failed"),
            statuses.count("skipped"))
