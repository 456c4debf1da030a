"""Workers: processes that claim queued runs and execute them, holding a lease on each.

A worker renews its leases on a heartbeat. A run whose lease expires (worker killed,
machine lost, network cut) is claimed by another worker and resumed from its last
recorded step; the claim replaces the run's fencing token, so the old worker can no
longer write a step result even if it comes back. On SIGTERM a worker stops claiming,
lets running steps finish (up to ``shutdown_timeout``) and hands unfinished runs back
to their queue, where another worker resumes them at once.
"""

from __future__ import annotations

import contextlib
import logging
import queue as queue_module
import signal
import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType

from . import ids, validation
from .errors import (
    ConfigurationError,
    FlowledgerError,
    LeaseLost,
    PayloadKeyMissing,
    RunCancelled,
    RunFailed,
    RunPaused,
    RunWaiting,
    StoreUnavailable,
    WorkerStopping,
)
from .ledger import Ledger
from .queueing import DEFAULT_QUEUE
from .store import Claim, Listener, WorkerRow
from .webhook_dispatch import WebhookDispatcher

log = logging.getLogger("flowledger.worker")
FORGET_WORKERS_AFTER = timedelta(days=1)
RETENTION_BATCHES = 10  # per turn: a large backlog is worked off turn by turn
KEYLESS_RETRY_S = 30  # a run this worker has no key for is due again after this


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise ConfigurationError(f"{name} must be positive, not {value!r}")
    return seconds


class Worker:
    """Claims runs from ``queues`` and executes up to ``concurrency`` of them at once.

    ``lease`` is how long a run stays held without a heartbeat (heartbeats come every
    third of it); ``max_recoveries`` is how many times a run whose worker was lost is
    resumed before it fails. ``poll_interval`` bounds how long an idle worker waits
    for work (PostgreSQL wakes it at once with LISTEN/NOTIFY; SQLite polls). A run that
    sleeps or waits for an event longer than ``suspend_after`` frees its slot meanwhile
    (status ``waiting``); a worker claims it again when it is due. With ``webhooks``
    (the default) it also sends webhook deliveries (a ``WebhookDispatcher`` on a thread
    of its own). Every ``retention_interval`` (None: never) it applies the retention
    policies (``Ledger.apply_retention``, bounded batches), one worker at a time: the
    others find the database lease held and skip that turn.

    Example::

        worker = fl.Worker("postgresql://localhost/app", queues=["triage"], concurrency=8)
        worker.run()  # until SIGTERM / Ctrl-C, or worker.stop() from another thread
    """

    def __init__(self, url: str | None = None, *, queues: Sequence[str] = (DEFAULT_QUEUE,),
                 concurrency: int = 4, lease: float | timedelta = 30.0,
                 max_recoveries: int = 5, poll_interval: float | timedelta | None = None,
                 shutdown_timeout: float | timedelta = 30.0,
                 suspend_after: float | timedelta = 1.0,
                 ledger: Ledger | None = None, webhooks: bool = True,
                 retention_interval: float | timedelta | None = 60.0) -> None:
        if not queues or isinstance(queues, str):
            raise ConfigurationError("queues must be a list of queue names (at least one)")
        for name in queues:
            validation.name(name, "a queue")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be a positive integer, "
                                     f"not {concurrency!r}")
        if not isinstance(max_recoveries, int) or max_recoveries < 0:
            raise ConfigurationError("max_recoveries must be 0 or more")
        self._owns_ledger = ledger is None
        self.ledger = ledger or Ledger(url)
        self.store = self.ledger.store
        self.store.backend.reserve_connections(concurrency)
        self.queues = list(dict.fromkeys(str(q) for q in queues))
        self.concurrency = concurrency
        self.lease_us = int(_seconds(lease, "lease") * 1_000_000)
        self.heartbeat_s = self.lease_us / 3_000_000
        self.max_recoveries = max_recoveries
        default_poll = 0.05 if self.store.dialect == "sqlite" else 1.0
        self.poll_s = _seconds(poll_interval, "poll_interval") if poll_interval else default_poll
        self.shutdown_s = _seconds(shutdown_timeout, "shutdown_timeout")
        self.id = self.ledger.identity
        self._stopping = threading.Event()
        self.ledger.stop_runs_when(self._stopping)
        self.suspend_after = _seconds(suspend_after, "suspend_after")
        self.ledger.suspend_waits_after(self.suspend_after)
        self._wake = threading.Event()
        self._work: queue_module.Queue[Claim | None] = queue_module.Queue()
        self._held: dict[uuid.UUID, Claim] = {}
        self._held_lock = threading.Lock()
        self._idle = threading.Condition(self._held_lock)
        self._handed_back = 0
        self._dispatcher = WebhookDispatcher(self.ledger) if webhooks else None
        self.retention_s = (None if retention_interval is None
                            else _seconds(retention_interval, "retention_interval"))
        self._row = WorkerRow(self.id, ids.hostname(), _pid(self.id), self.queues,
                              concurrency, "running", 0, 0, lease_us=self.lease_us)

    # -- running ---------------------------------------------------------------------
    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Work until ``stop()`` or, in the main thread, SIGTERM / SIGINT; then shut down
        gracefully (see the class docstring)."""
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._install_signal_handlers()
        now = ids.now_us()
        self._row.started_at = self._row.heartbeat_at = now
        forget = now - int(FORGET_WORKERS_AFTER.total_seconds() * 1_000_000)
        self.store.register_worker(self._row, forget)
        self.ledger.apply_declared_schedules()
        threads = [threading.Thread(target=self._execute_loop, name=f"flowledger-exec-{n}",
                                    daemon=True) for n in range(self.concurrency)]
        threads.append(threading.Thread(target=self._heartbeat_loop, daemon=True,
                                        name="flowledger-heartbeat"))
        if self.retention_s is not None:
            threads.append(threading.Thread(target=self._retention_loop, daemon=True,
                                            name="flowledger-retention"))
        for thread in threads:
            thread.start()
        if self._dispatcher is not None:
            self._dispatcher.start()
        listener = self.store.backend.listen(self._wake.set)
        try:
            self._claim_loop()
        finally:
            self._shut_down(listener)

    def stop(self) -> None:
        """Ask the worker to shut down gracefully (safe from any thread or signal)."""
        self._stopping.set()
        self._wake.set()

    def _install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self._stopping.is_set():
                raise KeyboardInterrupt  # a second signal: stop waiting for steps
            log.info("worker %s: %s received, shutting down", self.id,
                     signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _claim_loop(self) -> None:
        next_schedules = 0
        while not self._stopping.is_set():
            self._wake.clear()
            wait = self.poll_s
            with self._held_lock:
                free = self.concurrency - len(self._held)
            try:
                if free > 0:
                    result = self.store.claim_runs(self.queues, self.id, free, self.lease_us,
                                                   self.max_recoveries, ids.now_us,
                                                   ids.new_token)
                    for run_id in result.given_up:
                        log.warning("run %s failed: its worker was lost %d times", run_id,
                                    self.max_recoveries + 1)
                    with self._held_lock:
                        for claim in result.claimed:
                            self._held[claim.row.id] = claim
                    for claim in result.claimed:
                        _log_claim(claim)
                        self._work.put(claim)
                    if len(result.claimed) == free and result.claimed:
                        continue  # there may be more: claim again at once
                    if result.next_due is not None:
                        wait = min(wait, max((result.next_due - ids.now_us()) / 1e6, 0.001))
                now = ids.now_us()
                if now >= next_schedules:
                    self.ledger.fire_schedules()
                    upcoming = self.store.next_schedule_at()
                    next_schedules = now + 1_000_000 if upcoming is None \
                        else min(upcoming, now + 1_000_000)
                wait = min(wait, max((next_schedules - ids.now_us()) / 1e6, 0.001))
            except FlowledgerError as exc:
                log.warning("worker %s: %s; retrying in %.1fs", self.id, exc, self.poll_s)
            self._wake.wait(wait)

    def _execute_loop(self) -> None:
        while True:
            claim = self._work.get()
            if claim is None:
                return
            try:
                self._execute(claim)
            finally:
                with self._held_lock:
                    self._held.pop(claim.row.id, None)
                    self._idle.notify_all()
                self._wake.set()

    def _execute(self, claim: Claim) -> None:
        row, store = claim.row, self.store
        about = {"run_id": str(row.id)}  # JSON log lines carry it (--log-format json)
        try:
            prepared = self.ledger.prepare(row, claim.token, [] if claim.fresh else None)
        except PayloadKeyMissing as exc:
            if exc.shredded:  # unreadable for every worker, for good
                self._cannot_run(claim, exc)
                return
            # Another worker may hold the key (a fleet half-way through a key rollout):
            # hand the run back, due again a little later, rather than fail it.
            log.error("run %s: worker %s cannot read it (%s); handed back to queue %r, due "
                      "again in %ds", row.id, self.id, exc, row.queue, KEYLESS_RETRY_S,
                      extra=about)
            store.release_run(row.id, claim.token, row.queue or DEFAULT_QUEUE,
                              ids.now_us() + KEYLESS_RETRY_S * 1_000_000)
            return
        except Exception as exc:
            self._cannot_run(claim, exc)
            return
        try:
            self.ledger.execute(prepared)
            log.info("run %s (%s): completed", row.id, row.workflow, extra=about)
        except WorkerStopping:
            if store.release_run(row.id, claim.token, row.queue or DEFAULT_QUEUE):
                self._handed_back += 1
                log.info("run %s (%s): handed back to queue %s (worker stopping)", row.id,
                         row.workflow, row.queue or DEFAULT_QUEUE, extra=about)
        except LeaseLost:
            log.info("run %s (%s): taken over by another execution; this one stopped",
                     row.id, row.workflow, extra=about)
        except RunFailed as exc:
            log.info("run %s (%s): failed: %s: %s", row.id, row.workflow, exc.error_type,
                     exc.error_message, extra=about)
        except RunCancelled:
            log.info("run %s (%s): cancelled", row.id, row.workflow, extra=about)
        except RunPaused:
            log.info("run %s (%s): paused", row.id, row.workflow, extra=about)
        except RunWaiting as exc:
            log.info("run %s (%s): waiting %s", row.id, row.workflow,
                     f"for event {exc.waiting_for!r}" if exc.waiting_for else "for its timer",
                     extra=about)
        except StoreUnavailable as exc:
            log.warning("run %s (%s): stopped: %s", row.id, row.workflow, exc, extra=about)
            self._hand_back_when_reachable(claim)
        except BaseException:
            # A bug, not an outage: the lease lapses and another worker (or this one)
            # resumes the run from its last recorded step.
            log.exception("run %s stopped unexpectedly on worker %s", row.id, self.id,
                          extra=about)

    def _hand_back_when_reachable(self, claim: Claim) -> None:
        """The store went away under a run: give it back to its queue as soon as the
        store answers again (any worker resumes it at once), instead of leaving it to
        wait out its lease. Past the lease there is nothing left to give back."""
        row, queue = claim.row, claim.row.queue or DEFAULT_QUEUE
        about = {"run_id": str(row.id)}
        give_up = ids.now_us() + self.lease_us
        delay = 0.05
        while ids.now_us() < give_up:
            try:
                if self.store.release_run(row.id, claim.token, queue):
                    log.info("run %s (%s): handed back to queue %s (the store was "
                             "unreachable)", row.id, row.workflow, queue, extra=about)
                return  # released, or no longer ours (taken over meanwhile)
            except StoreUnavailable:
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, 1.0)

    def _cannot_run(self, claim: Claim, exc: BaseException) -> None:
        # The run cannot start here (code missing, changed, inputs unreadable): record
        # why, rather than let it expire and loop between workers.
        row = claim.row
        log.error("run %s cannot be executed by worker %s: %s", row.id, self.id, exc,
                  extra={"run_id": str(row.id)})
        self.store.finish_run(row.id, claim.token, "failed", None,
                              self.ledger.recorded_error(exc), ids.now_us())

    def _retention_loop(self) -> None:
        assert self.retention_s is not None
        while not self._stopping.wait(self.retention_s):
            try:
                report = self.ledger.apply_retention(max_batches=RETENTION_BATCHES)
            except FlowledgerError as exc:
                log.warning("worker %s: applying retention policies failed: %s", self.id, exc)
                continue
            if report.runs:
                log.info("worker %s: retention deleted %d runs (%d trees)%s", self.id,
                         report.runs, report.trees,
                         f", archived to {', '.join(report.archives)}" if report.archives
                         else "")

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(self.heartbeat_s):
            self._heartbeat()

    def _heartbeat(self) -> None:
        with self._held_lock:
            held = {run_id: claim.token for run_id, claim in self._held.items()}
        try:
            lost = self.store.renew_leases(self._row, held, self.lease_us, ids.now_us)
        except FlowledgerError as exc:
            log.warning("worker %s: heartbeat failed: %s", self.id, exc)
            return
        for run_id in lost:
            log.info("worker %s no longer holds run %s", self.id, run_id)

    # -- shutting down -------------------------------------------------------------------
    def _shut_down(self, listener: Listener | None) -> None:
        self._stopping.set()
        self._row.state = "stopping"
        self._heartbeat()
        for _ in range(self.concurrency):
            self._work.put(None)
        deadline = ids.now_us() + int(self.shutdown_s * 1_000_000)
        with self._held_lock:
            while self._held and ids.now_us() < deadline:
                self._idle.wait(max((deadline - ids.now_us()) / 1e6, 0.001))
            left = dict(self._held)
        for run_id, claim in left.items():
            # Steps still running past the timeout: hand the run back now. Their results,
            # if they ever come, are fenced out; the step runs again elsewhere.
            queue = claim.row.queue or DEFAULT_QUEUE
            try:
                if self.store.release_run(run_id, claim.token, queue):
                    self._handed_back += 1
                    log.info("run %s (%s): handed back to queue %s (shutdown timeout; its "
                             "running step will run again)", run_id, claim.row.workflow,
                             queue)
            except FlowledgerError as exc:
                log.warning("run %s could not be released (%s): its lease will expire",
                            run_id, exc)
        if listener is not None:
            listener.close()
        if self._dispatcher is not None:
            self._dispatcher.stop()
        with contextlib.suppress(FlowledgerError):
            self.store.remove_worker(self.id)
        if self._owns_ledger and not left:
            self.ledger.close()
        log.info("worker %s stopped (%d run%s handed back)", self.id, self._handed_back,
                 "" if self._handed_back == 1 else "s")


def _log_claim(claim: Claim) -> None:
    row = claim.row
    about = {"run_id": str(row.id)}
    if claim.fresh:
        how = "claimed"
    elif claim.taken_over:
        how = (f"taken over after its worker was lost (recovery {row.recovery_attempts}), "
               f"resuming at position {row.resumed_from_position}")
    else:
        how = f"claimed, resuming at position {row.resumed_from_position}"
    log.info("run %s (%s): %s", row.id, row.workflow, how, extra=about)


def _pid(identity: str) -> int:
    try:
        return int(identity.split(":")[1])
    except (IndexError, ValueError):
        return 0

