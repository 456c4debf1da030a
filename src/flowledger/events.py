"""A run's progress as a stream of events: run and step transitions, read from the store.

Events are derived from the records every run already writes (nothing extra on the step
hot path). Each event's ``id`` is a compact summary of everything delivered up to and
including it, so a client that reconnects with the last id it saw (SSE ``Last-Event-ID``)
gets exactly the events it missed — none lost, none twice — from any server process, and
whatever order concurrent steps committed in.

The id reads ``v1.<epoch>.<run phase>.<prefix>.<steps>`` (numbers in base 36): the run's
last resume, whether its start and end were delivered, the length of the leading run of
steps whose final event was delivered, and ``position-attempt-phase`` for the others.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .encryption import error_data
from .errors import InvalidCursor, RunNotFound
from .ledgerbase import LedgerBase
from .models import ErrorInfo, from_micros
from .store import AttemptRow, RunProgress, StepProgress

STARTED, FAILED, FINAL = 0, 1, 2  # a step's delivered phase; FINAL never changes again
PAUSE_DELIVERED = 3  # the run phase after run.paused (until a resume starts a new epoch)
_FINISHED_RUN = ("completed", "failed", "cancelled")
_NOTHING = (0, -1)


@dataclass(frozen=True)
class RunEvent:
    """One transition of a run or of one of its steps.

    ``type`` is ``run.started``, ``run.resumed``, ``step.started``, ``step.retrying``
    (an attempt failed and another follows), ``step.completed``, ``step.failed``,
    ``step.skipped``, ``run.paused`` (with its ``reason``), ``run.completed``,
    ``run.failed`` or ``run.cancelled``. Failures carry the ``error`` (type and
    message). Pass ``id`` back as ``after=`` to continue after this event.
    """

    id: str
    type: str
    run_id: str
    at: datetime | None
    position: int | None = None
    name: str | None = None
    attempt: int | None = None
    child_run_id: str | None = None
    error: ErrorInfo | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "run_id": self.run_id,
                "at": None if self.at is None else self.at.isoformat(),
                "position": self.position, "name": self.name, "attempt": self.attempt,
                "child_run_id": self.child_run_id,
                "error": None if self.error is None else {"type": self.error.type,
                                                          "message": self.error.message},
                "reason": self.reason}


@dataclass(frozen=True)
class EventBatch:
    """What ``Ledger.events`` found: new events, the cursor after them, and whether the
    run has ended (its final event is in this batch or was delivered before)."""

    events: tuple[RunEvent, ...]
    cursor: str
    finished: bool


@dataclass
class _Delivered:
    epoch: int = 0
    run_phase: int = 0  # 0 nothing, 1 start delivered, 2 end delivered
    prefix: int = 0
    steps: dict[int, tuple[int, int]] = field(default_factory=dict)

    def step(self, position: int) -> tuple[int, int]:
        if position <= self.prefix:
            return (1 << 62, FINAL)
        return self.steps.get(position, _NOTHING)

    def encode(self) -> str:
        while self.steps.get(self.prefix + 1, _NOTHING)[1] == FINAL:
            self.prefix += 1
            del self.steps[self.prefix]
        parts = "_".join(f"{_b36(p)}-{_b36(a)}-{ph}" for p, (a, ph) in sorted(self.steps.items()))
        return f"v1.{_b36(self.epoch)}.{self.run_phase}.{_b36(self.prefix)}.{parts}"

    @classmethod
    def decode(cls, cursor: str | None) -> _Delivered:
        if not cursor:
            return cls()
        try:
            version, epoch, phase, prefix, parts = cursor.split(".")
            if version != "v1" or phase not in ("0", "1", "2", "3") or len(cursor) > 100_000:
                raise ValueError(cursor)
            steps: dict[int, tuple[int, int]] = {}
            for part in filter(None, parts.split("_")):
                position, attempt, step_phase = part.split("-")
                if step_phase not in ("0", "1", "2"):
                    raise ValueError(part)
                steps[int(position, 36)] = (int(attempt, 36), int(step_phase))
            found = cls(int(epoch, 36), int(phase), int(prefix, 36), steps)
        except ValueError:
            raise InvalidCursor(f"invalid event id {cursor[:80]!r}: pass the id of an event "
                                "this run's stream delivered") from None
        if min((found.epoch, found.prefix, *steps), default=0) < 0:
            raise InvalidCursor(f"invalid event id {cursor[:80]!r}")
        return found


def _b36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        value, digit = divmod(value, 36)
        text = digits[digit] + text
        if not value:
            return text


@dataclass(frozen=True)
class _Change:
    """One step transition found in the records, with the delivered state it leads to."""

    at: int
    kind: str
    step: StepProgress
    attempt: int
    target: tuple[int, int]
    error: ErrorInfo | None = None


def _step_changes(step: StepProgress, tried: dict[int, AttemptRow]) -> list[_Change]:
    """Every transition of one step, in order: each attempt's start and how it ended
    (retrying, failed, completed or skipped). Times never go backwards within a step,
    so that sorting all steps' changes by time keeps each step's own order."""
    changes: list[_Change] = []
    clock = 0
    for number in range(1, step.attempts + 1):
        row = tried.get(number)
        current = number == step.attempts
        if row is None and not current:
            continue  # an attempt recorded before attempt history was kept
        clock = max(clock, (row.started_at if row is not None else step.started_at) or 0)
        changes.append(_Change(clock, "step.started", step, number, (number, STARTED)))
        if current and step.status not in ("running", "waiting"):  # waiting: not ended
            clock = max(clock, step.completed_at or 0)
            phase = FAILED if step.status == "failed" else FINAL
            error = _error(step.error) if step.status == "failed" else None
            changes.append(_Change(clock, f"step.{step.status}", step, number,
                                   (number, phase), error))
        elif row is not None and row.status == "failed":
            # An interrupted attempt has no end of its own: the next start follows it.
            clock = max(clock, row.completed_at or 0)
            kind = "step.retrying" if row.retry_at is not None else "step.failed"
            changes.append(_Change(clock, kind, step, number, (number, FAILED),
                                   _error(row.error)))
    return changes


def _error(text: str | None) -> ErrorInfo | None:
    if not text:
        return None
    try:
        return ErrorInfo.from_dict(error_data(text))
    except ValueError:
        return ErrorInfo("", text[:500])


def derive_events(progress: RunProgress, after: str | None) -> EventBatch:
    """The events of ``progress`` not yet covered by the cursor ``after``."""
    seen = _Delivered.decode(after)
    epoch = progress.resumed_at or 0  # changes whenever the run is resumed or taken over
    finished = progress.status in _FINISHED_RUN
    tried: dict[int, dict[int, AttemptRow]] = {}
    for row in progress.attempts:
        tried.setdefault(row.position, {})[row.attempt] = row
    # (sort key, type, change, at): the start comes first, the end last, the rest by time.
    found: list[tuple[tuple[int, int, int], str, _Change | None, int | None]] = []
    if seen.run_phase == 0 and progress.started_at is not None:
        found.append(((-1, 0, 0), "run.started", None, progress.started_at))
    if epoch != seen.epoch:
        found.append(((epoch, 0, 1), "run.resumed", None, epoch))
    for step in progress.steps:
        delivered = seen.step(step.position)
        for order, new in enumerate(_step_changes(step, tried.get(step.position, {}))):
            if new.target > delivered:
                found.append(((new.at, step.position, 2 + order), new.kind, new, new.at))
    if progress.paused_at is not None and not (seen.run_phase == PAUSE_DELIVERED
                                               and seen.epoch == epoch):
        found.append(((1 << 61, 0, 0), "run.paused", None, progress.paused_at))
    if finished and not (seen.run_phase == 2 and seen.epoch == epoch):
        found.append(((1 << 62, 0, 0), f"run.{progress.status}", None, progress.completed_at))
    found.sort(key=lambda item: item[0])
    run_id = str(progress.id)
    events = []
    for _, kind, change, at in found:
        if change is None:
            if kind == "run.started":
                seen.run_phase = 1
            else:
                seen.epoch = epoch
                seen.run_phase = {"run.resumed": 1, "run.paused": PAUSE_DELIVERED}.get(kind, 2)
            position = progress.resumed_from_position if kind == "run.resumed" else None
            error = _error(progress.error) if kind == "run.failed" else None
            reason = progress.pause_reason if kind == "run.paused" else None
            events.append(RunEvent(seen.encode(), kind, run_id, from_micros(at), position,
                                   error=error, reason=reason))
            continue
        step = change.step
        seen.steps[step.position] = change.target
        child = None if step.child_run_id is None else str(step.child_run_id)
        events.append(RunEvent(seen.encode(), kind, run_id, from_micros(at), step.position,
                               step.name, change.attempt, child, change.error))
    return EventBatch(tuple(events), seen.encode(),
                      finished and seen.run_phase == 2 and seen.epoch == epoch)


class LedgerEvents(LedgerBase):
    """Run event streams, a part of ``Ledger``."""

    def events(self, run_id: str | uuid.UUID, *, after: str | None = None) -> EventBatch:
        """The run's transitions since the event id ``after`` (from the start if None),
        read once. Raises RunNotFound, InvalidCursor.

        Example::

            batch = ledger.events(run_id)
            for event in batch.events:
                print(event.type, event.position, event.name)
            later = ledger.events(run_id, after=batch.cursor)  # only what happened since
        """
        progress = self.store.run_progress(self.run_uuid(run_id), self.owner)
        if progress is None:
            raise RunNotFound(str(run_id))
        return derive_events(progress, after)

    def watch(self, run_id: str | uuid.UUID, *, after: str | None = None,
              poll_interval: float = 0.2, timeout: float | None = None) -> Iterator[RunEvent]:
        """Yield the run's events as they happen, until it ends (or ``timeout`` seconds
        pass, raising TimeoutError). Works for runs executing in any process.

        Example: ``for event in ledger.watch(handle.id): print(event.type, event.name)``
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        cursor = after
        while True:
            batch = self.events(run_id, after=cursor)
            yield from batch.events
            cursor = batch.cursor
            if batch.finished:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} had not ended after {timeout}s")
            time.sleep(poll_interval)  # another process writes the run: poll the store


__all__ = ["EventBatch", "LedgerEvents", "RunEvent", "derive_events"]
