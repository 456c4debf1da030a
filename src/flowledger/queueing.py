"""The queue side of the Ledger: submitting runs for workers, queue limits, schedules,
and what workers and queues are doing. ``Ledger`` inherits these methods."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import ids, runids, validation
from .errors import ConfigurationError, RunAlreadyRunning, ScheduleNotFound
from .executor import new_run, prepare_inputs, resume_position
from .handle import RunHandle
from .ledgerbase import LedgerBase
from .models import RunStatus, from_micros
from .rates import format_rate, optional_rate
from .schedules import (
    Schedule,
    ScheduleDecl,
    check_cron,
    check_timezone,
    declared,
    next_tick,
    plan_ticks,
    tick_key,
    zone_argument,
)
from .serialization import refuse_redacted
from .store import SPEC_ENTRYPOINT, NewRun, RunRow, ScheduleRow, SpecRow
from .workflow import WorkflowRef, definition_of

DEFAULT_QUEUE = "default"
PRIORITY_RANGE = 1_000_000
LOST_AFTER_US = 60_000_000  # workers that recorded no lease (before flowledger 0.2)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process, as ``Ledger.workers()`` lists it.

    Example: ``[w.id for w in ledger.workers() if w.alive]``
    """

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    state: str
    runs_held: int
    started_at: datetime
    last_heartbeat: datetime
    alive: bool


@dataclass(frozen=True)
class QueueInfo:
    """Depth, running runs, recent throughput and limits of one queue (``Ledger.queues()``).

    Example: ``{q.name: q.ready for q in ledger.queues()}``
    """

    name: str
    ready: int
    delayed: int
    running: int
    completed: int
    failed: int
    window: timedelta
    per_second: float
    concurrency: int | None
    key_concurrency: int | None
    paused_at: datetime | None = None  # set while the queue is paused
    pause_reason: str | None = None
    rate: str | None = None  # claims per period across all workers, e.g. "100/s"
    key_rate: str | None = None  # the same, per concurrency key

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


def worker_alive(worker_id: str, heartbeat_at: int, lease_us: int | None, now: int,
                 window_us: int | None = None) -> bool:
    """Whether a worker lives: its last heartbeat is within ``window_us`` (default: its
    lease) and, on this host, its process is still there."""
    window = window_us if window_us is not None else lease_us or LOST_AFTER_US
    return heartbeat_at >= now - window and ids.is_alive_here(worker_id) is not False


def _name(value: str | None, what: str) -> str | None:
    return validation.optional_name(value, what)


def queue_name(value: str) -> str:
    """A valid queue name, or ConfigurationError."""
    return _name(value, "queue") or DEFAULT_QUEUE


def _delay_us(delay: float | timedelta | None) -> int:
    if delay is None:
        return 0
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if not 0 <= seconds <= 366 * 86400:
        raise ConfigurationError(f"delay must be between 0 and 366 days, not {delay!r}")
    return int(seconds * 1_000_000)


def _limit(value: int | None, what: str) -> int | None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"{what} must be a positive integer or None, not {value!r}")
    return value


def _priority(value: int) -> int:
    if not isinstance(value, int) or not -PRIORITY_RANGE <= value <= PRIORITY_RANGE:
        raise ConfigurationError(f"priority must be an integer between -{PRIORITY_RANGE} and "
                                 f"{PRIORITY_RANGE}, not {value!r}")
    return value


def _rate_text(rate: tuple[int, int] | None) -> str | None:
    return None if rate is None else format_rate(*rate)


class LedgerQueueing(LedgerBase):
    """Queue operations, a part of ``Ledger``."""

    def submit(self, workflow: WorkflowRef, /, *args: Any,
               queue: str = DEFAULT_QUEUE, priority: int = 0,
               idempotency_key: str | None = None, delay: float | timedelta | None = None,
               concurrency_key: str | None = None, owner: str | None = None,
               tags: Iterable[str] | None = (), deadline: float | timedelta | None = None,
               inputs: Mapping[str, Any] | None = None, run_id: str | uuid.UUID | None = None,
               **kwargs: Any) -> RunHandle:
        """Queue a run for a worker; it stays ``pending`` until one claims it.

        Workers claim the highest ``priority`` first, then the oldest. ``delay`` (seconds
        or a timedelta) holds the run back; ``idempotency_key`` makes a second submit
        with the same key (same owner) return the existing run instead; runs sharing a
        ``concurrency_key`` obey the queue's per-key limit (``set_queue_limits``). A
        ``deadline`` counts from when the run becomes due. ``run_id`` (a UUID) chooses
        the run's id, idempotently: a run of this workflow and owner with that id is
        returned (``created`` False), one of another workflow or owner raises
        ``RunIdConflict``.

        Example::

            handle = ledger.submit(triage, 42, queue="triage", priority=5,
                                   idempotency_key="issue-42", delay=timedelta(minutes=5))
        """
        definition = definition_of(workflow)
        _, inputs_text = prepare_inputs(
            self._runtime, definition, args,
            validation.arguments_or_inputs(kwargs, args, inputs), convert=inputs is not None,
            queued=True)
        now = ids.now_us()
        due = now + _delay_us(delay)
        seconds = validation.deadline_seconds(deadline, definition.deadline)
        run = new_run(
            definition, self._owner_for(owner), self._runtime.serializer.name, inputs_text,
            created_at=now,
            deadline_at=None if seconds is None else due + int(seconds * 1_000_000),
            tags=validation.tags(tags), queue=_name(queue, "queue"), priority=_priority(priority),
            scheduled_at=due if due > now else None,
            idempotency_key=_name(idempotency_key, "idempotency_key"),
            concurrency_key=_name(concurrency_key, "concurrency_key"))
        chosen = runids.chosen(run_id)
        if chosen is not None:
            run.id = chosen
            if runids.existing(self.store, chosen, definition, run.owner):
                return RunHandle(self, str(chosen), created=False)
            found: list[tuple[uuid.UUID, bool]] = []
            if not runids.create(self.store, run, definition,
                                 lambda new: found.append(self.store.submit_run(new))):
                return RunHandle(self, str(chosen), created=False)
            new_id, created = found[0]
            return RunHandle(self, str(new_id), created=created)
        new_id, created = self.store.submit_run(run)
        return RunHandle(self, str(new_id), created=created)

    def _requeue(self, row: RunRow, queue: str) -> RunHandle:
        """``resume(run, queue=…)``: a failed or cancelled run goes back to a queue."""
        name = queue_name(queue)
        if row.status == RunStatus.PENDING:
            return RunHandle(self, str(row.id), created=False)
        if row.status == RunStatus.RUNNING:
            raise RunAlreadyRunning(f"run {row.id} is running; cancel it first, or wait")
        refuse_redacted(row.inputs, f"run {row.id}")  # a worker would run from the record
        position = resume_position(self.store.get_steps(row.id))
        if not self.store.requeue_run(row.id, self.owner, name, position, ids.now_us()):
            raise RunAlreadyRunning(f"run {row.id} was just resumed by another process")
        return RunHandle(self, str(row.id))

    # -- queues and workers ------------------------------------------------------------
    def set_queue_limits(self, queue: str, *, concurrency: int | None = None,
                         key_concurrency: int | None = None, rate: str | None = None,
                         key_rate: str | None = None) -> None:
        """Limit how many runs of ``queue`` run at once across all workers, and how many
        of them may share one ``concurrency_key``; ``rate`` (``"100/s"``) caps how fast
        workers claim its runs, ``key_rate`` how fast runs sharing one key are claimed.
        ``None`` removes a limit (each call sets all four).

        Example: ``ledger.set_queue_limits("llm", concurrency=10, rate="100/s")``
        """
        self.store.set_queue_limits(_name(queue, "queue") or DEFAULT_QUEUE,
                                    _limit(concurrency, "concurrency"),
                                    _limit(key_concurrency, "key_concurrency"), ids.now_us(),
                                    optional_rate(rate), optional_rate(key_rate))

    def queues(self, window: timedelta = timedelta(minutes=5)) -> list[QueueInfo]:
        """Every queue with runs or limits: ready and delayed depth, running runs, and
        runs finished within ``window`` (all owners: queues are shared).

        Example: ``ledger.queues()[0].ready``
        """
        window_us = int(window.total_seconds() * 1_000_000)
        if window_us <= 0:
            raise ConfigurationError("window must be positive")
        return [QueueInfo(row.name, row.ready, row.delayed, row.running, row.completed,
                          row.failed, window, row.completed / window.total_seconds(),
                          row.concurrency, row.key_concurrency, from_micros(row.paused_at),
                          row.pause_reason, _rate_text(row.rate), _rate_text(row.key_rate))
                for row in self.store.queue_rows(ids.now_us(), window_us)]

    def pause_queue(self, name: str, *, reason: str | None = None) -> bool:
        """Stop workers from claiming the queue ``name``'s runs (pending ones and lost ones alike)
        until ``resume_queue``; runs already executing carry on. Returns False when it
        was paused already (its first pause, and reason, stand).

        Example: ``ledger.pause_queue("llm", reason="provider outage")``
        """
        if reason is not None and not 1 <= len(reason) <= 500:
            raise ConfigurationError("a pause reason has 1 to 500 characters")
        return self.store.pause_queue(queue_name(name), ids.now_us(), reason)

    def resume_queue(self, name: str) -> bool:
        """Let workers claim the queue ``name``'s runs again; False when it was not paused.

        Example: ``ledger.resume_queue("llm")``
        """
        return self.store.resume_queue(queue_name(name))

    def workers(self, *, include_lost: bool = False,
                stale_after: timedelta | None = None) -> list[WorkerInfo]:
        """Live worker processes (all of them with ``include_lost``), with the runs each
        holds. A worker is lost when its last heartbeat is older than its lease (its runs
        are then taken over; ``stale_after`` sets another limit) or, on this host, when
        its process is gone; its ``state`` then reads ``lost``.

        Example: ``for w in ledger.workers(): print(w.host, w.pid, w.runs_held)``
        """
        now = ids.now_us()
        found = []
        for row in self.store.list_workers():
            window = (int(stale_after.total_seconds() * 1_000_000) if stale_after is not None
                      else None)
            alive = worker_alive(row.id, row.heartbeat_at, row.lease_us, now, window)
            if alive or include_lost:
                found.append(WorkerInfo(
                    row.id, row.host, row.pid, tuple(row.queues), row.concurrency,
                    row.state if alive else "lost", row.held,
                    from_micros(row.started_at) or datetime.min,
                    from_micros(row.heartbeat_at) or datetime.min, alive))
        return found

    # -- schedules -------------------------------------------------------------------
    def add_schedule(self, workflow: WorkflowRef, *, cron: str,
                     name: str | None = None, inputs: Mapping[str, Any] | None = None,
                     queue: str = DEFAULT_QUEUE, priority: int = 0,
                     catch_up: bool = False, owner: str | None = None,
                     tz: str | None = None, timezone: str | None = None) -> Schedule:
        """Store a schedule (replacing one of the same name; a pause stands): workers
        submit ``workflow`` to ``queue`` on every tick of ``cron`` (five fields, six with
        seconds, or a macro such as ``@daily``), read in the IANA zone ``tz`` (``timezone``
        is the same, spelled out; None: UTC).

        Example: ``ledger.add_schedule(report, cron="0 9 * * 1-5", tz="Europe/Berlin")``
        """
        definition = definition_of(workflow)
        expression = check_cron(cron)
        zone = check_timezone(zone_argument(tz, timezone))
        _, inputs_text = prepare_inputs(self._runtime, definition, (), dict(inputs or {}),
                                        convert=True, queued=True)
        now = ids.now_us()
        who = self._owner_for(owner)
        if definition.source is not None:  # a spec: its ticks' runs name the stored text
            self.store.save_spec_text(SpecRow(
                who, definition.entrypoint.removeprefix(SPEC_ENTRYPOINT), definition.name,
                definition.version, definition.source, now, None))
        row = ScheduleRow(
            name=_name(name or definition.name, "schedule name") or definition.name,
            owner=who, workflow=definition.name,
            version=definition.version, entrypoint=definition.entrypoint,
            serializer=self._runtime.serializer.name, inputs=inputs_text, cron=expression,
            queue=_name(queue, "queue") or DEFAULT_QUEUE, priority=_priority(priority),
            catch_up=bool(catch_up), next_fire_at=next_tick(expression, now, zone),
            created_at=now, timezone=zone)
        return self._schedule(self.store.save_schedule(row))

    def apply_declared_schedules(self) -> list[Schedule]:
        """Store every schedule declared with ``fl.schedule`` in imported modules
        (workers do this when they start)."""
        return [self._apply(decl) for decl in declared()]

    def _apply(self, decl: ScheduleDecl) -> Schedule:
        return self.add_schedule(decl.workflow, cron=decl.cron, name=decl.name,
                                 inputs=decl.inputs, queue=decl.queue, priority=decl.priority,
                                 catch_up=decl.catch_up, timezone=decl.timezone)

    def schedules(self) -> list[Schedule]:
        """The stored schedules (this Ledger's owner's only, when it has one)."""
        return [self._schedule(row) for row in self.store.list_schedules(self.owner)]

    def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none of that name."""
        return self.store.delete_schedule(name, self.owner)

    def pause_schedule(self, name: str) -> bool:
        """Stop workers from firing the schedule ``name`` until ``resume_schedule``; runs
        it started carry on. False when it was paused already. Raises ScheduleNotFound.

        Example: ``ledger.pause_schedule("nightly_report")``
        """
        if self.store.pause_schedule(name, self.owner, ids.now_us()):
            return True
        self._stored_schedule(name)
        return False

    def resume_schedule(self, name: str) -> bool:
        """Fire the paused schedule ``name`` again, from its next tick after now (ticks
        due while it was paused are skipped, even with ``catch_up``). False when it was
        not paused. Raises ScheduleNotFound.

        Example: ``ledger.resume_schedule("nightly_report")``
        """
        row = self._stored_schedule(name)
        following = next_tick(row.cron, ids.now_us(), row.timezone)
        return self.store.resume_schedule(name, self.owner, following)

    def trigger_schedule(self, name: str) -> RunHandle:
        """Submit a run of the schedule ``name`` now, as a tick would (same workflow,
        inputs, queue, priority and tag; ``fl.current_run().scheduled_at`` is now),
        whether it is paused or not; its next tick is unchanged. Raises ScheduleNotFound.

        Example: ``ledger.trigger_schedule("nightly_report").result(timeout=600)``
        """
        row = self._stored_schedule(name)
        run_id, created = self.store.submit_run(_tick_run(row, ids.now_us()))
        return RunHandle(self, str(run_id), created=created)

    def _stored_schedule(self, name: str) -> ScheduleRow:
        row = self.store.get_schedule(name, self.owner)
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return row

    def fire_schedules(self, now: datetime | None = None) -> list[str]:
        """Submit the runs of every due schedule tick (workers call this); returns their
        ids. Each tick starts one run however many processes call this at once.

        ``now`` stands in for the clock, e.g. to see what a later pass would fire.
        """
        clock = (ids.now_us if now is None
                 else (lambda: int(now.timestamp() * 1_000_000)))

        def plan(schedule: ScheduleRow, at: int) -> tuple[list[int], int]:
            return plan_ticks(schedule.cron, schedule.next_fire_at, schedule.catch_up, at,
                              schedule.timezone)

        return [str(run_id) for run_id in self.store.fire_schedules(clock, plan, _tick_run)]

    def _schedule(self, row: ScheduleRow) -> Schedule:
        serializer = self._runtime.serializer
        inputs = (serializer.loads(row.inputs)
                  if row.inputs is not None and row.serializer == serializer.name
                  else row.inputs)
        return Schedule(row.name, row.workflow, row.cron, row.queue, row.priority,
                        row.catch_up, row.owner, inputs,
                        from_micros(row.next_fire_at) or datetime.min,
                        from_micros(row.last_fired_at),
                        str(row.last_run_id) if row.last_run_id else None,
                        row.timezone, from_micros(row.paused_at))


def _tick_run(schedule: ScheduleRow, tick: int) -> NewRun:
    """The run of one tick of a schedule (its key says which: ``tick_key``)."""
    return new_run((schedule.workflow, schedule.version, schedule.entrypoint),
                   schedule.owner, schedule.serializer, schedule.inputs,
                   tags=(f"schedule:{schedule.name}",), queue=schedule.queue,
                   priority=schedule.priority, idempotency_key=tick_key(schedule.name, tick))


__all__ = ["DEFAULT_QUEUE", "LedgerQueueing", "QueueInfo", "WorkerInfo"]
