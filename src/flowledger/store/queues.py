"""The queue side of the store: submitting, claiming, leases, workers, schedules.

Claiming runs in one write transaction: PostgreSQL locks candidate rows with
``FOR UPDATE SKIP LOCKED`` (concurrent workers take different runs without waiting);
SQLite's ``BEGIN IMMEDIATE`` makes the whole claim exclusive. A queue with limits has its
row in ``flowledger_queues`` locked first, so the running count the limits are checked
against cannot change under the claim.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from . import history
from .core import StoreCore
from .rows import Claim, ClaimResult, NewRun, QueueRow, RunRow, ScheduleRow, WorkerRow
from .schema import queues, runs, schedules, workers
from .statements import queues as queues_sql

Clock = Callable[[], int]


def _worker_lost(attempts: int) -> str:
    return json.dumps({
        "type": "flowledger.WorkerLost", "traceback": "",
        "message": f"the run's worker was lost {attempts} times (its lease expired each "
                   "time); giving up instead of recovering it again (max_recoveries)"})


class StoreQueues(StoreCore):
    """Queues, workers and schedules; a part of ``SqlStore``."""

    # -- submitting ----------------------------------------------------------------
    def submit_run(self, run: NewRun) -> tuple[uuid.UUID, bool]:
        """Record a pending run. With an idempotency key the owner already used, nothing
        is recorded and the existing run's id is returned: (id, created)."""
        assert run.queue is not None
        with self._write() as conn:
            keyed = run.idempotency_key is not None
            if self._insert_run(conn, run, unless_duplicate=keyed):
                self.backend.notify(conn, run.queue)
                return run.id, True
            existing = conn.execute(select(runs.c.id).where(
                runs.c.owner == run.owner,
                runs.c.idempotency_key == run.idempotency_key)).scalar_one()
            return existing, False

    # -- claiming ------------------------------------------------------------------
    def claim_runs(self, queue_names: Sequence[str], worker: str, limit: int,
                   lease_us: int, max_recoveries: int, clock: Clock,
                   new_token: Callable[[], str]) -> ClaimResult:
        """Claim up to ``limit`` runs for ``worker``: runs whose lease expired first (they
        resume), then pending runs by priority (highest first), then age, within the
        queues' global and per-key concurrency limits."""
        names = list(queue_names)
        with self._write() as conn:
            limits = {row.name: (row.concurrency, row.key_concurrency) for row in conn.execute(
                select(queues).where(queues.c.name.in_(names)).with_for_update())}
            now = clock()  # read after the locks: claims never predate the slot they take
            result = ClaimResult([], [], None)
            # run id: (token, fresh, taken over)
            taken: dict[uuid.UUID, tuple[str, bool, bool]] = {}
            self._reclaim_expired(conn, names, worker, limit, lease_us, max_recoveries, now,
                                  new_token, result, taken)
            room = limit - len(taken)
            if room > 0:
                self._claim_pending(conn, names, limits, worker, room, lease_us, now,
                                    clock, new_token, taken)
            if len(taken) < limit:
                result.next_due = conn.execute(select(func.min(runs.c.scheduled_at)).where(
                    runs.c.status == "pending", runs.c.queue.in_(names),
                    runs.c.scheduled_at > now)).scalar()
            if taken:
                rows = conn.execute(select(runs).where(runs.c.id.in_(list(taken)))).all()
                result.claimed = [Claim(RunRow.from_row(row, ()), *taken[row.id]) for row in rows]
            return result

    def _reclaim_expired(self, conn: Connection, names: list[str], worker: str, limit: int,
                         lease_us: int, max_recoveries: int, now: int,
                         new_token: Callable[[], str], result: ClaimResult,
                         taken: dict[uuid.UUID, tuple[str, bool, bool]]) -> None:
        expired = conn.execute(
            select(runs.c.id, runs.c.recovery_attempts)
            .where(runs.c.status == "running", runs.c.queue.in_(names),
                   runs.c.lease_expires_at < now)
            .order_by(runs.c.lease_expires_at).limit(limit)
            .with_for_update(skip_locked=True)).all()
        for run_id, recoveries in expired:
            if recoveries >= max_recoveries:
                self._fail_run(conn, run_id, _worker_lost(recoveries + 1), now)
                result.given_up.append(run_id)
                continue
            token = new_token()
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                lease_token=token, executor=worker, lease_expires_at=now + lease_us,
                recovery_attempts=runs.c.recovery_attempts + 1, resumed_at=now,
                resumed_from_position=queues_sql.RESUME_POSITION))
            history.record_interrupted(conn, run_id, None)
            taken[run_id] = (token, False, True)

    def _claim_pending(self, conn: Connection, names: list[str],
                       limits: Mapping[str, tuple[int | None, int | None]], worker: str,
                       room: int, lease_us: int, now: int, clock: Clock,
                       new_token: Callable[[], str],
                       taken: dict[uuid.UUID, tuple[str, bool, bool]]) -> None:
        limited = [name for name, (total, _) in limits.items() if total is not None]
        keyed = {name for name, (_, per_key) in limits.items() if per_key is not None}
        budget: dict[str, int] = {}
        if limited:
            running: dict[str, int] = dict(conn.execute(
                select(runs.c.queue, func.count()).where(
                    runs.c.status == "running", runs.c.queue.in_(limited))
                .group_by(runs.c.queue)).all())
            budget = {name: (limits[name][0] or 0) - running.get(name, 0) for name in limited}
            if all(budget.get(name, 1) <= 0 for name in names):
                return
        # Runs over a per-key limit are passed over, so look further down the queue.
        window = room * 10 + 50 if keyed else room
        candidates = conn.execute(
            select(runs.c.id, runs.c.queue, runs.c.concurrency_key, runs.c.started_at,
                   runs.c.forked_from)
            .where(runs.c.status == "pending", runs.c.queue.in_(names),
                   or_(runs.c.scheduled_at.is_(None), runs.c.scheduled_at <= now))
            .order_by(runs.c.priority.desc(), runs.c.id).limit(window)
            .with_for_update(skip_locked=True)).all()
        per_key: Counter[tuple[str, str]] = Counter()
        keys = {c.concurrency_key for c in candidates
                if c.queue in keyed and c.concurrency_key is not None}
        if keys:
            for queue, key, count in conn.execute(
                    select(runs.c.queue, runs.c.concurrency_key, func.count()).where(
                        runs.c.status == "running", runs.c.queue.in_(list(keyed)),
                        runs.c.concurrency_key.in_(list(keys)))
                    .group_by(runs.c.queue, runs.c.concurrency_key)):
                per_key[(queue, key)] = count
        chosen: list[Any] = []
        for candidate in candidates:
            if len(chosen) >= room:
                break
            queue, key = candidate.queue, candidate.concurrency_key
            if queue in budget and budget[queue] <= 0:
                continue
            if queue in keyed and key is not None:
                if per_key[(queue, key)] >= (limits[queue][1] or 0):
                    continue
                per_key[(queue, key)] += 1
            if queue in budget:
                budget[queue] -= 1
            chosen.append(candidate)
        if not chosen:
            return
        tokens = [new_token() for _ in chosen]
        # Read the clock after the running counts: a run whose end let this claim in was
        # committed before them, so the recorded start never precedes that end.
        now = clock()
        conn.execute(queues_sql.CLAIM_PENDING, [
            {"cid": c.id, "tok": tok, "worker": worker, "expires": now + lease_us,
             "now": now} for c, tok in zip(chosen, tokens, strict=True)])
        for candidate in chosen:
            if candidate.started_at is not None:  # handed back or requeued: it resumes
                history.record_interrupted(conn, candidate.id, None)
        # A fork that never started still has the source's steps to replay.
        taken.update((c.id, (tok, c.started_at is None and c.forked_from is None, False))
                     for c, tok in zip(chosen, tokens, strict=True))

    # -- leases --------------------------------------------------------------------
    def renew_leases(self, worker: WorkerRow, held: Mapping[uuid.UUID, str], lease_us: int,
                     clock: Clock) -> set[uuid.UUID]:
        """Extend the leases of the runs ``worker`` holds and record its heartbeat.
        Returns the runs it no longer holds (taken over, cancelled or finished)."""
        with self._write() as conn:
            now = clock()
            worker.heartbeat_at = now
            touched = conn.execute(update(workers).where(workers.c.id == worker.id).values(
                heartbeat_at=now, state=worker.state)).rowcount
            if not touched:
                conn.execute(insert(workers).values(**_worker_values(worker)))
            if not held:
                return set()
            current = dict(conn.execute(select(runs.c.id, runs.c.lease_token).where(
                runs.c.id.in_(list(held)), runs.c.status == "running")).all())
            kept = [run_id for run_id, token in held.items() if current.get(run_id) == token]
            if kept:
                conn.execute(queues_sql.RENEW, [{"cid": run_id, "tok": held[run_id],
                                       "expires": now + lease_us} for run_id in kept])
            return set(held) - set(kept)

    def release_run(self, run_id: uuid.UUID, token: str, queue: str) -> bool:
        """Give a held run back to its queue (pending, claimable at once by any worker);
        the token changes, so the releasing execution can no longer write."""
        with self._write() as conn:
            released = conn.execute(update(runs).where(
                runs.c.id == run_id, runs.c.lease_token == token,
                runs.c.status == "running").values(
                status="pending", lease_token=None, executor=None, lease_expires_at=None,
                scheduled_at=None)).rowcount
            if released:
                self.backend.notify(conn, queue)
            return bool(released)

    def requeue_run(self, run_id: uuid.UUID, owner: str | None, queue: str,
                    resumed_from: int, now: int) -> bool:
        """Put a failed or cancelled run back in a queue, to be resumed by a worker from
        ``resumed_from``. False when the run is not (or no longer) failed or cancelled."""
        condition = [runs.c.id == run_id, runs.c.status.in_(("failed", "cancelled"))]
        if owner is not None:
            condition.append(runs.c.owner == owner)
        with self._write() as conn:
            moved = conn.execute(update(runs).where(*condition).values(
                status="pending", queue=queue, lease_token=None, executor=None,
                lease_expires_at=None, scheduled_at=None, completed_at=None, error=None,
                output=None, resumed_from_position=resumed_from)).rowcount
            if moved:
                self.backend.notify(conn, queue)
            return bool(moved)

    # -- workers -------------------------------------------------------------------
    def register_worker(self, worker: WorkerRow, forget_before: int) -> None:
        """Record a worker; rows of workers silent since ``forget_before`` are dropped."""
        with self._write() as conn:
            conn.execute(delete(workers).where(or_(workers.c.id == worker.id,
                                                   workers.c.heartbeat_at < forget_before)))
            conn.execute(insert(workers).values(**_worker_values(worker)))

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))

    def list_workers(self) -> list[WorkerRow]:
        with self._read() as conn:
            found = [WorkerRow(id=r.id, host=r.host, pid=r.pid, queues=json.loads(r.queues),
                               concurrency=r.concurrency, state=r.state,
                               started_at=r.started_at, heartbeat_at=r.heartbeat_at,
                               lease_us=r.lease_us)
                     for r in conn.execute(select(workers).order_by(workers.c.started_at))]
            if found:
                held: dict[str, int] = dict(conn.execute(
                    select(runs.c.executor, func.count()).where(
                        runs.c.status == "running", runs.c.queue.is_not(None),
                        runs.c.executor.in_([w.id for w in found]))
                    .group_by(runs.c.executor)).all())
                for worker in found:
                    worker.held = held.get(worker.id, 0)
            return found

    # -- queue limits and figures ----------------------------------------------------
    def set_queue_limits(self, name: str, concurrency: int | None,
                         key_concurrency: int | None, now: int) -> None:
        with self._write() as conn:
            conn.execute(delete(queues).where(queues.c.name == name))
            if concurrency is not None or key_concurrency is not None:
                conn.execute(insert(queues).values(name=name, concurrency=concurrency,
                                                   key_concurrency=key_concurrency,
                                                   updated_at=now))

    def queue_rows(self, now: int, window_us: int) -> list[QueueRow]:
        """Every queue with limits or runs: depth (ready, delayed), running, and runs
        finished in the last ``window_us``."""
        found: dict[str, QueueRow] = {}

        def row(name: str) -> QueueRow:
            return found.setdefault(name, QueueRow(name, None, None))

        delayed = case((runs.c.scheduled_at > now, 1), else_=0)
        with self._read() as conn:
            for name, total, per_key in conn.execute(
                    select(queues.c.name, queues.c.concurrency, queues.c.key_concurrency)):
                row(name).concurrency, row(name).key_concurrency = total, per_key
            for name, status, is_delayed, count in conn.execute(
                    select(runs.c.queue, runs.c.status, delayed, func.count())
                    .where(runs.c.queue.is_not(None), runs.c.status.in_(["pending", "running"]))
                    .group_by(runs.c.queue, runs.c.status, delayed)):
                entry = row(name)
                if status == "running":
                    entry.running += count
                elif is_delayed:
                    entry.delayed += count
                else:
                    entry.ready += count
            for name, status, count in conn.execute(
                    select(runs.c.queue, runs.c.status, func.count())
                    .where(runs.c.queue.is_not(None), runs.c.completed_at >= now - window_us)
                    .group_by(runs.c.queue, runs.c.status)):
                if status == "completed":
                    row(name).completed += count
                elif status == "failed":
                    row(name).failed += count
        return sorted(found.values(), key=lambda entry: entry.name)

    # -- schedules -------------------------------------------------------------------
    def save_schedule(self, schedule: ScheduleRow) -> ScheduleRow:
        """Create or replace a schedule by name. Replacing keeps the next tick when the
        cron expression is unchanged (so re-declaring it on every start fires nothing)."""
        with self._write() as conn:
            existing = conn.execute(select(schedules).where(
                schedules.c.name == schedule.name).with_for_update()).first()
            if existing is not None:
                if existing.cron == schedule.cron:
                    schedule.next_fire_at = existing.next_fire_at
                schedule.last_fired_at = existing.last_fired_at
                schedule.last_run_id = existing.last_run_id
                schedule.created_at = existing.created_at
                conn.execute(delete(schedules).where(schedules.c.name == schedule.name))
            conn.execute(insert(schedules).values(**_schedule_values(schedule)))
            return schedule

    def list_schedules(self, owner: str | None) -> list[ScheduleRow]:
        query = select(schedules).order_by(schedules.c.name)
        if owner is not None:
            query = query.where(schedules.c.owner == owner)
        with self._read() as conn:
            return [_schedule_row(row) for row in conn.execute(query)]

    def delete_schedule(self, name: str, owner: str | None) -> bool:
        query = delete(schedules).where(schedules.c.name == name)
        if owner is not None:
            query = query.where(schedules.c.owner == owner)
        with self._write() as conn:
            return bool(conn.execute(query).rowcount)

    def fire_schedules(self, clock: Clock,
                       plan: Callable[[ScheduleRow, int], tuple[list[int], int]],
                       make_run: Callable[[ScheduleRow, int], NewRun]) -> list[uuid.UUID]:
        """Start the runs of every due schedule tick, exactly once across all workers.

        ``plan(schedule, now)`` gives the ticks to fire and the next tick. The runs and
        the schedule's advance commit together; a tick's idempotency key makes a second
        firing of it impossible even so.
        """
        started: list[uuid.UUID] = []
        with self._write() as conn:
            now = clock()
            due = conn.execute(select(schedules).where(schedules.c.next_fire_at <= now)
                               .with_for_update(skip_locked=True)).all()
            for raw in due:
                schedule = _schedule_row(raw)
                ticks, next_fire = plan(schedule, now)
                last_run = schedule.last_run_id
                for tick in ticks:
                    run = make_run(schedule, tick)
                    if self._insert_run(conn, run, unless_duplicate=True):
                        started.append(run.id)
                        last_run = run.id
                        self.backend.notify(conn, schedule.queue)
                conn.execute(update(schedules).where(schedules.c.name == schedule.name)
                             .values(next_fire_at=next_fire, last_run_id=last_run,
                                     last_fired_at=ticks[-1] if ticks
                                     else schedule.last_fired_at))
        return started

    def next_schedule_at(self) -> int | None:
        with self._read() as conn:
            value = conn.execute(select(func.min(schedules.c.next_fire_at))).scalar()
            return None if value is None else int(value)


def _worker_values(worker: WorkerRow) -> dict[str, Any]:
    return {"id": worker.id, "host": worker.host, "pid": worker.pid,
            "queues": json.dumps(worker.queues), "concurrency": worker.concurrency,
            "state": worker.state, "started_at": worker.started_at,
            "heartbeat_at": worker.heartbeat_at, "lease_us": worker.lease_us}


def _schedule_values(schedule: ScheduleRow) -> dict[str, Any]:
    values = {name: getattr(schedule, name) for name in ScheduleRow.__slots__}
    values["catch_up"] = int(schedule.catch_up)
    return values


def _schedule_row(row: Any) -> ScheduleRow:
    m = row._mapping
    values = {name: m[name] for name in ScheduleRow.__slots__}
    values["catch_up"] = bool(values["catch_up"])
    return ScheduleRow(**values)

