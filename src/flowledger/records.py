"""Store rows to the public records (Run, Step, Usage), decoding payloads."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .errors import FlowledgerError
from .models import (
    ErrorInfo,
    Run,
    RunStatus,
    Step,
    StepCounts,
    StepStatus,
    Usage,
    UsageTotals,
    _duration,
    from_micros,
)
from .serialization import Serializer
from .store import RunRow, StepRow, UsageRow


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
            usage: Sequence[UsageRow] | None = None) -> Run:
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
        return Run(
            id=run_id, workflow=row.workflow, version=row.version, entrypoint=row.entrypoint,
            owner=row.owner, tags=row.tags, status=RunStatus(row.status),
            inputs=self.load(row.serializer, row.inputs),
            output=self.load(row.serializer, row.output),
            error=ErrorInfo.from_dict(json.loads(row.error)) if row.error else None,
            created_at=from_micros(row.created_at) or datetime.min,
            started_at=from_micros(row.started_at), completed_at=from_micros(row.completed_at),
            duration=_duration(row.started_at, row.completed_at), counts=counts,
            recovery_attempts=row.recovery_attempts,
            parent_id=str(row.parent_id) if row.parent_id else None,
            forked_from=str(row.forked_from) if row.forked_from else None,
            forked_from_position=row.forked_from_position,
            resumed_at=from_micros(row.resumed_at),
            resumed_from_position=row.resumed_from_position,
            deadline_at=from_micros(row.deadline_at),
            steps=tuple(self.step(run_id, row.serializer, s, by_position.get(s.position, ()),
                                  lambda text: self._payload(row, text))
                        for s in steps or ()),
            usage=totals, queue=row.queue, priority=row.priority,
            scheduled_at=from_micros(row.scheduled_at), idempotency_key=row.idempotency_key,
        )

    def _payload(self, row: RunRow, text: str | None) -> str | None:
        """An offloaded output's content; if its artifact cannot be read here, a note
        saying so — the rest of the trace stays readable."""
        try:
            return self.payload(row.id, row.owner, text)
        except (OSError, FlowledgerError) as exc:
            key = (text or "").partition(":")[2]
            return json.dumps({"$artifact": key, "unavailable": f"{type(exc).__name__}: {exc}"})

    def step(self, run_id: str, serializer: str, row: StepRow, usage: Sequence[Usage],
             payload: Callable[[str | None], str | None]) -> Step:
        return Step(
            run_id=run_id, position=row.position, name=row.name,
            status=StepStatus(row.status), attempts=row.attempts,
            input=self.load(serializer, row.input),
            output=self.load(serializer, payload(row.output)),
            error=ErrorInfo.from_dict(json.loads(row.error)) if row.error else None,
            started_at=from_micros(row.started_at), completed_at=from_micros(row.completed_at),
            duration=_duration(row.started_at, row.completed_at),
            child_run_id=str(row.child_run_id) if row.child_run_id else None,
            usage=tuple(usage),
        )


def usage_record(row: UsageRow) -> Usage:
    return Usage(row.model, row.provider, row.input_tokens, row.output_tokens,
                 row.cached_input_tokens, row.reasoning_tokens, row.cost_usd,
                 row.prices_version, from_micros(row.recorded_at))


def count_steps(steps: Sequence[StepRow]) -> tuple[int, int, int, int]:
    statuses = [s.status for s in steps]
    return (len(statuses), statuses.count("completed"), statuses.count("failed"),
            statuses.count("skipped"))
