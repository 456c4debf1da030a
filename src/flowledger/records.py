"""Store rows to the public records (Run, Step, Usage), decoding payloads."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import astuple, replace
from datetime import datetime
from typing import Any

from . import ids
from .artifacts import OUTPUT_MARKER, artifact_info
from .encryption import error_data, is_sealed, placeholder
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
    usd,
)
from .serialization import Serializer
from .store import AttemptRow, Revision, RunRead, RunRow, StepMarks, StepRow, UsageRow

INTERRUPTED_TYPE = "flowledger.Interrupted"


class Records:
    """Builds Runs and Steps; payloads are decoded as plain values with the serializer
    that wrote them (text is returned as is if the run used another serializer)."""

    def __init__(self, serializer: Serializer,
                 payload: Callable[[uuid.UUID, str, str | None], str | None],
                 payload_head: Callable[[str, str, int], str] | None = None) -> None:
        self.serializer = serializer
        self.payload = payload  # follows offloaded outputs to their artifact
        self.payload_head = payload_head  # (owner, digest, characters): a preview of one

    def load(self, row_serializer: str, text: str | None) -> Any:
        if text is None:
            return None
        if is_sealed(text):  # its key is not in this process's keyring
            return placeholder(text)
        if row_serializer != self.serializer.name:
            return text
        return self.serializer.loads(text)

    def read(self, found: RunRead, preview: int | None = None) -> Run:
        """A run read whole (``SqlStore.read_run``): steps, usage of the run and its
        descendants, attempts, context and artifacts. With ``preview`` (characters), the
        steps' offloaded outputs are previewed from the start of their artifact."""
        steps = found.steps
        if preview is not None:
            steps = [self._previewed(found, step, preview) for step in steps]
        run = self.run(found.run, steps, usage=found.usage, attempts=found.attempts,
                       preview=preview is not None)
        context = {name: self.load(self.serializer.name, value)
                   for name, value in found.context}
        row = found.run
        own = Revision(row.id, row.owner, row.revision, row.status, row.lease_expires_at,
                       row.executor, row.parent_id)
        return replace(run, context=context,
                       artifacts=tuple(artifact_info(row) for row in found.artifacts),
                       revision=revision_token([own, *found.descendants],
                                               StepMarks.of(found.steps)))

    def run(self, row: RunRow, steps: list[StepRow] | None,
            live: tuple[int, int, int, int] | None = None,
            usage: Sequence[UsageRow] | None = None,
            attempts: Sequence[AttemptRow] = (), preview: bool = False) -> Run:
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
            error=ErrorInfo.from_dict(error_data(row.error)) if row.error else None,
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
                                  tried.get(s.position, ()), preview)
                        for s in steps or ()),
            usage=totals, queue=row.queue, priority=row.priority,
            scheduled_at=from_micros(row.scheduled_at), idempotency_key=row.idempotency_key,
            executor=row.executor, lease_expires_at=from_micros(row.lease_expires_at),
            stalled=stalled(row), paused_at=from_micros(row.paused_at),
            pause_reason=row.pause_reason, paused_by=row.paused_by,
            **_waiting(row),
        )

    def _previewed(self, found: RunRead, step: StepRow, chars: int) -> StepRow:
        """The step with an offloaded output replaced by the start of its content."""
        text = step.output
        if text is None or not text.startswith(OUTPUT_MARKER) or self.payload_head is None:
            return step
        key = text[len(OUTPUT_MARKER):]
        stored = next((a for a in found.artifacts if a.key == key), None)
        if stored is None:
            return step
        try:
            head = self.payload_head(stored.owner, stored.digest, chars)
        except OSError as exc:
            head = json.dumps({"$artifact": key, "unavailable": f"{type(exc).__name__}: {exc}"})
        whole = len(head.encode()) == stored.size
        return replace(step, output=head, output_length=None if whole else stored.size)

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
             attempts: Sequence[AttemptRow] = (), preview: bool = False) -> Step:
        status = StepStatus(row.status)
        error = ErrorInfo.from_dict(error_data(row.error)) if row.error else None
        started, completed = from_micros(row.started_at), from_micros(row.completed_at)
        duration = duration_between(row.started_at, row.completed_at)
        # The step row is its latest attempt: that record is built from the values above.
        interrupted = error is not None and error.type == INTERRUPTED_TYPE
        latest = Attempt(row.attempts, AttemptOutcome.INTERRUPTED if interrupted
                         else _OUTCOME[status], started, completed, duration, error,
                         interrupted)
        # A preview is the start of the serialized text, shown as text; an offloaded
        # output is not fetched for one (its reference is shown instead).
        input_cut = row.input_length is not None
        output_cut = row.output_length is not None or (
            preview and row.output is not None and row.output.startswith(OUTPUT_MARKER))
        return Step(
            run_id=run_id, position=row.position, name=row.name,
            status=status, attempts=row.attempts,
            input=row.input if input_cut else self.load(serializer, row.input),
            output=row.output if output_cut else self.load(serializer, payload(row.output)),
            error=error, started_at=started, completed_at=completed, duration=duration,
            child_run_id=str(row.child_run_id) if row.child_run_id else None,
            usage=tuple(usage),
            attempt_history=(latest,) if row.attempts == 1 and not attempts
            else attempt_history(row.attempts, latest, attempts),
            input_truncated=input_cut, output_truncated=output_cut,
            redacted=bool(row.redacted),
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
    error = ErrorInfo.from_dict(error_data(error_text)) if error_text else None
    outcome = AttemptOutcome(status)
    if error is not None and error.type == INTERRUPTED_TYPE:
        outcome = AttemptOutcome.INTERRUPTED
    return Attempt(number, outcome, from_micros(started), from_micros(completed),
                   duration_between(started, completed), error,
                   outcome is AttemptOutcome.INTERRUPTED, from_micros(retry_at))


def stall_state(status: str, lease_expires_at: int | None, executor: str | None) -> str:
    """Which kind of stall a run is in, as far as can be known from here: "" (none),
    "expired" (its worker's lease), "worker-gone" (before the lease expires), "gone"
    (the process that ran it, without a lease)."""
    if status != "running":
        return ""
    if lease_expires_at is not None:
        if lease_expires_at < ids.now_us():
            return "expired"
        return "worker-gone" if ids.is_alive_here(executor) is False else ""
    # alive, or on another host (nothing can be known from here)
    return "gone" if ids.is_alive_here(executor) is False else ""


def revision_token(revisions: Sequence[Revision], marks: StepMarks) -> str:
    """A token that changes whenever reading the run (the first of ``revisions``; the
    rest are its descendants) would return something different: its revision and its
    steps' marks, its descendants' revisions (they count in its usage), and what its
    ``stalled`` note says."""
    digest = hashlib.blake2b(digest_size=8)
    for item in sorted(revisions[1:], key=lambda r: r.id.bytes):
        digest.update(item.id.bytes + item.revision.to_bytes(8, "big"))
    digest.update(repr(astuple(marks)).encode())
    first = revisions[0]
    digest.update(stall_state(first.status, first.lease_expires_at, first.executor).encode())
    return f"{first.revision}-{len(revisions) - 1}-{digest.hexdigest()}"


def stalled(row: RunRow) -> str | None:
    """Why a run marked running is not advancing, when that is known from here: its
    worker's lease expired, or its process on this host is gone. None otherwise."""
    return stalled_note(str(row.id), row.status, row.lease_expires_at, row.executor,
                        row.queue, row.parent_id)


def stalled_note(run_id: str, status: str, lease_expires_at: int | None,
                 executor: str | None, queue: str | None,
                 parent_id: uuid.UUID | str | None) -> str | None:
    """``stalled`` from the columns it depends on."""
    state = stall_state(status, lease_expires_at, executor)
    if state == "expired":
        return (f"its worker's lease expired at {from_micros(lease_expires_at)}: a "
                f"worker serving queue {queue!r} takes it over (see flowledger workers)")
    if state == "worker-gone":
        return (f"its worker (pid {_pid_of(executor)}) is gone: a worker serving "
                f"queue {queue!r} takes it over when its lease expires at "
                f"{from_micros(lease_expires_at)}")
    if state != "gone":
        return None
    gone = f"the process that ran it (pid {_pid_of(executor)}) is gone"
    if parent_id is not None:
        return f"{gone}: it continues when its parent run {parent_id} is resumed"
    return (f"{gone}: continue it with `flowledger resume {run_id}` or "
            "`flowledger recover`")


def _iso(micros: int | None) -> str | None:
    return None if micros is None else from_micros(micros).isoformat()  # type: ignore[union-attr]


def _error(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    data = error_data(text)
    return {"type": str(data.get("type", "")), "message": str(data.get("message", "")),
            "traceback": str(data.get("traceback", ""))}


def summary(row: Sequence[Any], load_id: Callable[[Any], uuid.UUID | None]) -> dict[str, Any]:
    """A run summary (``Ledger.summaries``) as JSON-ready values, straight from a listing
    row (``SUMMARY_COLUMNS``, the four counts, tags, calls, tokens, cost)."""
    (run_id, workflow, version, owner, status, error, created_at, started_at, completed_at,
     deadline_at, recovery_attempts, parent_id, forked_from, forked_from_position,
     resumed_at, resumed_from_position, executor, queue, priority, scheduled_at,
     idempotency_key, lease_expires_at, _revision, total, completed, failed, skipped, tags,
     calls, tokens, cost) = row
    text_id = str(load_id(run_id))
    parent = load_id(parent_id)
    fork = load_id(forked_from)
    return {
        "id": text_id, "workflow": workflow, "version": version, "owner": owner,
        "tags": sorted(tags.split("\t")) if tags else [], "status": status,
        "error": _error(error), "created_at": _iso(created_at),
        "started_at": _iso(started_at), "completed_at": _iso(completed_at),
        "duration": None if started_at is None or completed_at is None
        else (completed_at - started_at) / 1_000_000,
        "counts": {"total": total, "completed": completed, "failed": failed,
                   "skipped": skipped},
        "deadline_at": _iso(deadline_at), "queue": queue, "priority": priority,
        "scheduled_at": _iso(scheduled_at), "idempotency_key": idempotency_key,
        "executor": executor, "lease_expires_at": _iso(lease_expires_at),
        "stalled": stalled_note(text_id, status, lease_expires_at, executor, queue, parent),
        "lineage": {"parent_id": str(parent) if parent else None,
                    "forked_from": str(fork) if fork else None,
                    "forked_from_position": forked_from_position,
                    "resumed_at": _iso(resumed_at),
                    "resumed_from_position": resumed_from_position,
                    "recovery_attempts": recovery_attempts},
        "own_usage": {"calls": calls, "tokens": int(tokens or 0),
                  "cost_usd": None if cost is None else usd(float(cost))},
    }


def marks_token(rows: Sequence[Sequence[Any]], more: bool) -> str:
    """A token that changes whenever a page of summaries would read back differently,
    from its light rows (``MARK_COLUMNS`` and the four counts)."""
    digest = hashlib.blake2b(digest_size=8)
    for run_id, revision, status, lease, executor, *counts in rows:
        digest.update(repr((str(run_id), revision, status, stall_state(status, lease, executor),
                            counts)).encode())
    digest.update(b"+" if more else b".")
    return digest.hexdigest()


def _pid_of(executor: str | None) -> str:
    parts = (executor or "").split(":")
    return parts[1] if len(parts) > 1 else "?"


def usage_record(row: UsageRow) -> Usage:
    return Usage(row.model, row.provider, row.input_tokens, row.output_tokens,
                 row.cached_input_tokens, row.reasoning_tokens, row.cost_usd,
                 row.prices_version, from_micros(row.recorded_at), bool(row.cache_hit))


def count_steps(steps: Sequence[StepRow]) -> tuple[int, int, int, int]:
    statuses = [s.status for s in steps]
    return (len(statuses), statuses.count("completed"), statuses.count("failed"),
            statuses.count("skipped"))


def _waiting(row: RunRow) -> dict[str, Any]:
    """What a waiting run waits for (kept on the row after it wakes, shown only while
    it waits)."""
    if row.status != "waiting":
        return {}
    return {"waiting_for": row.waiting_for, "wake_at": from_micros(row.wake_at)}
