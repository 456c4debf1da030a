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

from sqlalchemy import Connection

from . import history
from .core import StoreCore
from .ratelimits import QueueRates
from .rows import Claim, ClaimResult, NewRun, QueueRow, RunRow, ScheduleRow, WorkerRow
from .sealing import schedule_aad
from .statements import queues as queues_sql
from .statements import ratelimits as rl_sql
from .statements import schedules as schedules_sql
from .statements import waits as waits_sql
from .statements import workers as workers_sql

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
        self.sealing.prepare(run.owner)
        with self._write() as conn:
            keyed = run.idempotency_key is not None
            if self._insert_run(conn, run, unless_duplicate=keyed):
                self.backend.notify(conn, run.queue)
                return run.id, True
            existing = conn.execute(queues_sql.run_with_key(
                run.owner, run.idempotency_key)).scalar_one()
            return existing, False

    # -- claiming ------------------------------------------------------------------
    def claim_runs(self, queue_names: Sequence[str], worker: str, limit: int,
                   lease_us: int, max_recoveries: int, clock: Clock,
                   new_token: Callable[[], str]) -> ClaimResult:
        """Claim up to ``limit`` runs for ``worker``: runs whose lease expired first (they
        resume), then pending runs by priority (highest first), then age, within the
        queues' global and per-key concurrency limits."""
        with self._write() as conn:
            paused = set(conn.execute(queues_sql.paused_among(list(queue_names))).scalars())
            names = [name for name in queue_names if name not in paused]
            if not names:
                return ClaimResult([], [], None)
            limit_rows = conn.execute(queues_sql.lock_limits(names)).all()
            limits = {row.name: (row.concurrency, row.key_concurrency) for row in limit_rows}
            now = clock()  # read after the locks: claims never predate the slot they take
            rates = QueueRates(conn, limit_rows, now)
            conn.execute(waits_sql.wake_due(names, now))
            result = ClaimResult([], [], None)
            # run id: (token, fresh, taken over)
            taken: dict[uuid.UUID, tuple[str, bool, bool]] = {}
            self._reclaim_expired(conn, names, worker, limit, lease_us, max_recoveries, now,
                                  new_token, result, taken)
            room = limit - len(taken)
            if room > 0:
                self._claim_pending(conn, names, limits, worker, room, lease_us, now,
                                    clock, new_token, taken, rates)
            if len(taken) < limit:
                due = [conn.execute(queues_sql.next_due(names, now)).scalar(),
                       conn.execute(waits_sql.next_wake(names)).scalar(), rates.due()]
                result.next_due = min((at for at in due if at is not None), default=None)
            if taken:
                rows = conn.execute(queues_sql.claimed_runs(list(taken))).all()
                result.claimed = [Claim(RunRow.from_row(row, ()), *taken[row.id])
                                  for row in rows]
        for claim in result.claimed:  # opened outside the claim's transaction
            self.sealing.run_row(claim.row)
        return result

    def _reclaim_expired(self, conn: Connection, names: list[str], worker: str, limit: int,
                         lease_us: int, max_recoveries: int, now: int,
                         new_token: Callable[[], str], result: ClaimResult,
                         taken: dict[uuid.UUID, tuple[str, bool, bool]]) -> None:
        expired = conn.execute(queues_sql.expired_leases(names, now, limit)).all()
        for run_id, recoveries in expired:
            if recoveries >= max_recoveries:
                self._fail_run(conn, run_id, _worker_lost(recoveries + 1), now)
                result.given_up.append(run_id)
                continue
            token = new_token()
            conn.execute(queues_sql.reclaim(run_id, token, worker, now + lease_us, now))
            history.record_interrupted(conn, run_id, None)
            taken[run_id] = (token, False, True)

    def _claim_pending(self, conn: Connection, names: list[str],
                       limits: Mapping[str, tuple[int | None, int | None]], worker: str,
                       room: int, lease_us: int, now: int, clock: Clock,
                       new_token: Callable[[], str],
                       taken: dict[uuid.UUID, tuple[str, bool, bool]],
                       rates: QueueRates) -> None:
        limited = [name for name, (total, _) in limits.items() if total is not None]
        keyed = {name for name, (_, per_key) in limits.items() if per_key is not None}
        key_rated = set(rates.per_key)
        budget: dict[str, int] = {}
        if limited:
            running: dict[str, int] = dict(conn.execute(
                queues_sql.running_per_queue(limited)).all())
            budget = {name: (limits[name][0] or 0) - running.get(name, 0) for name in limited}
            if all(budget.get(name, 1) <= 0 for name in names):
                return
        # Runs over a per-key limit are passed over, so look further down the queue.
        window = room * 10 + 50 if keyed or key_rated else room
        candidates = conn.execute(queues_sql.pending_candidates(names, now, window)).all()
        rates.load(candidates)
        per_key: Counter[tuple[str, str]] = Counter()
        keys = {c.concurrency_key for c in candidates
                if c.queue in keyed and c.concurrency_key is not None}
        if keys:
            for queue, key, count in conn.execute(
                    queues_sql.running_per_key(list(keyed), list(keys))):
                per_key[(queue, key)] = count
        chosen: list[Any] = []
        for candidate in candidates:
            if len(chosen) >= room:
                break
            queue, key = candidate.queue, candidate.concurrency_key
            if queue in budget and budget[queue] <= 0:
                continue
            if queue in keyed and key is not None \
                    and per_key[(queue, key)] >= (limits[queue][1] or 0):
                continue
            if not rates.admit(queue, key):  # charged only when admitted
                continue
            if queue in keyed and key is not None:
                per_key[(queue, key)] += 1
            if queue in budget:
                budget[queue] -= 1
            chosen.append(candidate)
        rates.save()
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
            touched = conn.execute(workers_sql.heartbeat(worker, now)).rowcount
            if not touched:
                conn.execute(workers_sql.insert_worker(worker))
            if not held:
                return set()
            current: dict[uuid.UUID, str | None] = dict(
                conn.execute(queues_sql.held_tokens(list(held))).all())
            kept = [run_id for run_id, token in held.items() if current.get(run_id) == token]
            if kept:
                conn.execute(queues_sql.RENEW, [{"cid": run_id, "tok": held[run_id],
                                       "expires": now + lease_us} for run_id in kept])
            return set(held) - set(kept)

    def release_run(self, run_id: uuid.UUID, token: str, queue: str,
                    not_before: int | None = None) -> bool:
        """Give a held run back to its queue (pending, claimable at once by any worker, or
        from ``not_before``); the token changes, so the releasing execution can no longer
        write."""
        with self._write() as conn:
            released = conn.execute(queues_sql.release(run_id, token, not_before)).rowcount
            if released:
                self.backend.notify(conn, queue)
            return bool(released)

    def requeue_run(self, run_id: uuid.UUID, owner: str | None, queue: str,
                    resumed_from: int, now: int) -> bool:
        """Put a failed or cancelled run back in a queue, to be resumed by a worker from
        ``resumed_from``. False when the run is not (or no longer) failed or cancelled."""
        query = queues_sql.requeue(run_id, owner, queue, resumed_from)
        with self._write() as conn:
            moved = conn.execute(query).rowcount
            if moved:
                self.backend.notify(conn, queue)
            return bool(moved)

    # -- workers -------------------------------------------------------------------
    def register_worker(self, worker: WorkerRow, forget_before: int) -> None:
        """Record a worker; rows of workers silent since ``forget_before`` are dropped."""
        with self._write() as conn:
            conn.execute(workers_sql.forget_workers(worker.id, forget_before))
            conn.execute(workers_sql.insert_worker(worker))

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute(workers_sql.remove_worker(worker_id))

    def list_workers(self) -> list[WorkerRow]:
        with self._read() as conn:
            found = [WorkerRow(id=r.id, host=r.host, pid=r.pid, queues=json.loads(r.queues),
                               concurrency=r.concurrency, state=r.state,
                               started_at=r.started_at, heartbeat_at=r.heartbeat_at,
                               lease_us=r.lease_us)
                     for r in conn.execute(workers_sql.LIST_WORKERS)]
            if found:
                held: dict[str, int] = dict(conn.execute(
                    workers_sql.held_per_worker([w.id for w in found])).all())
                for worker in found:
                    worker.held = held.get(worker.id, 0)
            return found

    # -- queue limits and figures ----------------------------------------------------
    def set_queue_limits(self, name: str, concurrency: int | None,
                         key_concurrency: int | None, now: int,
                         rate: tuple[int, int] | None = None,
                         key_rate: tuple[int, int] | None = None) -> None:
        """Replace a queue's limits (rates as (units, period in µs)); changing them
        resets its claim-rate buckets."""
        with self._write() as conn:
            conn.execute(queues_sql.delete_limits(name))
            conn.execute(rl_sql.delete_queue_buckets(name))
            if any(value is not None for value in (concurrency, key_concurrency, rate,
                                                   key_rate)):
                conn.execute(queues_sql.insert_limits(name, concurrency, key_concurrency, now,
                                                      rate, key_rate))

    def pause_queue(self, name: str, now: int, reason: str | None) -> bool:
        """Stop claims from a queue. False when it was paused already."""
        with self._write() as conn:
            return bool(conn.execute(queues_sql.PAUSE_QUEUE,
                                     {"name": name, "now": now, "reason": reason}).rowcount)

    def resume_queue(self, name: str) -> bool:
        """Let workers claim from a queue again (waking those that listen). False when it
        was not paused."""
        with self._write() as conn:
            resumed = bool(conn.execute(queues_sql.resume_queue(name)).rowcount)
            if resumed:
                self.backend.notify(conn, name)
            return resumed

    def queue_rows(self, now: int, window_us: int) -> list[QueueRow]:
        """Every queue with limits, runs or a pause: depth (ready, delayed), running, runs
        finished in the last ``window_us``, and when and why it was paused."""
        found: dict[str, QueueRow] = {}

        def row(name: str) -> QueueRow:
            return found.setdefault(name, QueueRow(name, None, None))

        with self._read() as conn:
            for name, paused_at, reason in conn.execute(queues_sql.PAUSED_QUEUES):
                row(name).paused_at, row(name).pause_reason = paused_at, reason
            for name, total, per_key in conn.execute(queues_sql.QUEUE_LIMITS):
                row(name).concurrency, row(name).key_concurrency = total, per_key
            for name, units, period, key_units, key_period in conn.execute(
                    rl_sql.QUEUE_RATES):
                row(name).rate = None if units is None else (units, period)
                row(name).key_rate = None if key_units is None else (key_units, key_period)
            for name, status, is_delayed, count in conn.execute(queues_sql.depths(now)):
                entry = row(name)
                if status == "running":
                    entry.running += count
                elif is_delayed:
                    entry.delayed += count
                else:
                    entry.ready += count
            for name, status, count in conn.execute(
                    queues_sql.finished_since(now - window_us)):
                if status == "completed":
                    row(name).completed += count
                elif status == "failed":
                    row(name).failed += count
        return sorted(found.values(), key=lambda entry: entry.name)

    # -- schedules -------------------------------------------------------------------
    def save_schedule(self, schedule: ScheduleRow) -> ScheduleRow:
        """Create or replace a schedule by name. Replacing keeps the next tick when the
        cron expression is unchanged (so re-declaring it on every start fires nothing)."""
        plain = schedule.inputs
        schedule.inputs = self.sealing.seal(plain, schedule_aad(schedule.name),
                                            owner=schedule.owner)
        try:
            return self._save_schedule(schedule)
        finally:
            schedule.inputs = plain

    def _save_schedule(self, schedule: ScheduleRow) -> ScheduleRow:
        with self._write() as conn:
            existing = conn.execute(schedules_sql.lock_schedule(schedule.name)).first()
            if existing is not None:
                if (existing.cron, existing.timezone) == (schedule.cron, schedule.timezone):
                    schedule.next_fire_at = existing.next_fire_at
                schedule.paused_at = existing.paused_at  # a re-declaration never resumes
                schedule.last_fired_at = existing.last_fired_at
                schedule.last_run_id = existing.last_run_id
                schedule.created_at = existing.created_at
                conn.execute(schedules_sql.delete_schedule(schedule.name, None))
            conn.execute(schedules_sql.insert_schedule(schedule))
            return schedule

    def list_schedules(self, owner: str | None) -> list[ScheduleRow]:
        query = schedules_sql.list_schedules(owner)
        with self._read() as conn:
            return [self.sealing.schedule_row(_schedule_row(row))
                    for row in conn.execute(query)]

    def get_schedule(self, name: str, owner: str | None) -> ScheduleRow | None:
        with self._read() as conn:
            row = conn.execute(schedules_sql.get_schedule(name, owner)).first()
            return None if row is None else self.sealing.schedule_row(_schedule_row(row))

    def pause_schedule(self, name: str, owner: str | None, now: int) -> bool:
        """False when there is no such schedule, or it was paused already."""
        with self._write() as conn:
            return bool(conn.execute(schedules_sql.pause_schedule(name, owner, now)).rowcount)

    def resume_schedule(self, name: str, owner: str | None, next_fire_at: int) -> bool:
        """False when there is no such schedule, or it was not paused."""
        query = schedules_sql.resume_schedule(name, owner, next_fire_at)
        with self._write() as conn:
            return bool(conn.execute(query).rowcount)

    def delete_schedule(self, name: str, owner: str | None) -> bool:
        query = schedules_sql.delete_schedule(name, owner)
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
            due = conn.execute(schedules_sql.due_schedules(now)).all()
            for raw in due:
                schedule = self.sealing.schedule_row(_schedule_row(raw))
                ticks, next_fire = plan(schedule, now)
                last_run = schedule.last_run_id
                for tick in ticks:
                    run = make_run(schedule, tick)
                    if self._insert_run(conn, run, unless_duplicate=True):
                        started.append(run.id)
                        last_run = run.id
                        self.backend.notify(conn, schedule.queue)
                conn.execute(schedules_sql.advance_schedule(
                    schedule.name, next_fire, last_run,
                    ticks[-1] if ticks else schedule.last_fired_at))
        return started

    def next_schedule_at(self) -> int | None:
        with self._read() as conn:
            value = conn.execute(schedules_sql.NEXT_FIRE_AT).scalar()
            return None if value is None else int(value)


def _schedule_row(row: Any) -> ScheduleRow:
    m = row._mapping
    values = {name: m[name] for name in ScheduleRow.__slots__}
    values["catch_up"] = bool(values["catch_up"])
    return ScheduleRow(**values)

