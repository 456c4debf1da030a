"""Acting on many runs at once by filter: ``Ledger.cancel_runs`` and ``Ledger.resume_runs``.

The matching runs are read a batch at a time (newest first, keyset-paginated by id) and
each batch is acted on in its own short transaction, so a bulk operation over a million
runs never holds one giant transaction, and runs that start or finish meanwhile are
treated by the state they are in when their batch comes. ``Ledger`` inherits these
methods.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from . import ids
from .errors import ConfigurationError, RedactedInputs, RunAlreadyRunning
from .models import RunStatus
from .queries import LedgerQueries
from .queueing import LedgerQueueing, queue_name
from .store import RunFilter, RunRow

DEFAULT_BATCH = 500
CANCELLABLE = ("pending", "running", "paused", "waiting")
RESUMABLE = ("failed", "cancelled", "paused")


@dataclass(frozen=True)
class BulkResult:
    """What ``cancel_runs`` or ``resume_runs`` did (or, with ``dry_run``, would do).

    ``count`` runs were acted on (``run_ids``, newest first); ``skipped`` matched but were
    left alone (they finished or changed meanwhile, or a resume had no queue for them).

    Example::

        result = ledger.cancel_runs(workflow="triage", status="running")
        print(f"cancelled {result.count} runs")
    """

    action: str  # "cancel" or "resume"
    count: int
    run_ids: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "count": self.count, "dry_run": self.dry_run,
                "run_ids": list(self.run_ids), "skipped": list(self.skipped)}


def _statuses(status: str | Iterable[str] | None, allowed: tuple[str, ...],
              verb: str) -> list[str]:
    chosen = [status] if isinstance(status, str) else list(status or allowed)
    wrong = [s for s in chosen if s not in allowed]
    if wrong:
        raise ConfigurationError(f"only runs that are {', '.join(allowed)} can be {verb}, "
                                 f"not {wrong[0]!r}")
    return chosen


def _still_pausing(row: RunRow) -> bool:
    """A paused run whose execution may still be finishing its step in flight: it still
    holds the run, and its process is not known to be gone (``resume`` waits for it)."""
    return (row.status == RunStatus.PAUSED and row.lease_token is not None
            and ids.is_alive_here(row.executor) is not False)


class LedgerBulk(LedgerQueries, LedgerQueueing):
    """Bulk operations by filter, a part of ``Ledger``."""

    def cancel_runs(self, *, status: str | Iterable[str] | None = None,
                    workflow: str | None = None, owner: str | None = None,
                    tag: str | None = None, since: datetime | timedelta | None = None,
                    until: datetime | timedelta | None = None, queue: str | None = None,
                    executor: str | None = None, parent: str | None = None,
                    forked_from: str | None = None, top_level: bool = False,
                    all_runs: bool = False, dry_run: bool = False,
                    batch_size: int = DEFAULT_BATCH) -> BulkResult:
        """Cancel every unfinished run the filters match (those of ``runs()``; ``status``
        among pending, running, paused and waiting, all four by default), with their
        child runs, from any process: each stops before its next step.

        The runs are cancelled ``batch_size`` at a time, one transaction per batch. With
        no filter at all it refuses unless ``all_runs=True``; ``dry_run`` changes nothing
        and lists what it would cancel. A Ledger opened for an owner cancels only that
        owner's runs. Child runs cancelled with their parent are not counted.

        Example: ``ledger.cancel_runs(workflow="triage", status="running").count``
        """
        statuses = _statuses(status, CANCELLABLE, "cancelled")
        flt = self._bulk_filter(status, statuses, all_runs, workflow, owner, tag, since,
                                until, queue, executor, parent, forked_from, top_level)
        done: list[str] = []
        skipped: list[str] = []
        for batch in self._batches(flt, batch_size):
            if dry_run:
                done += map(str, batch)
                continue
            cancelled = self.store.cancel_runs(batch, self.owner, ids.now_us())
            done += map(str, cancelled)
            left = set(batch) - set(cancelled)
            skipped += [str(run_id) for run_id in batch if run_id in left]
        return BulkResult("cancel", len(done), tuple(done), tuple(skipped), dry_run)

    def resume_runs(self, *, status: str | Iterable[str] | None = None,
                    workflow: str | None = None, owner: str | None = None,
                    tag: str | None = None, since: datetime | timedelta | None = None,
                    until: datetime | timedelta | None = None, queue: str | None = None,
                    executor: str | None = None, forked_from: str | None = None,
                    to_queue: str | None = None, all_runs: bool = False,
                    dry_run: bool = False, batch_size: int = DEFAULT_BATCH) -> BulkResult:
        """Put every failed, cancelled or paused top-level run the filters match back in a
        queue for workers (``pending``), resuming from its first unfinished step: each goes
        to ``to_queue``, else to the queue it was submitted to. Runs with neither (started
        in a process, no ``to_queue``) are skipped; so are child runs (their parent
        resumes them), paused runs whose execution is still finishing a step, and runs
        whose inputs were redacted when recorded (docs/redaction.md).

        ``queue`` filters by the queue runs were submitted to; the rest as ``cancel_runs``
        (batches, ``all_runs``, ``dry_run``, owner scope).

        Example: ``ledger.resume_runs(workflow="triage", status="failed", to_queue="retry")``
        """
        statuses = _statuses(status, RESUMABLE, "resumed")
        flt = replace(self._bulk_filter(status, statuses, all_runs, workflow, owner, tag,
                                        since, until, queue, executor, None, forked_from,
                                        False), roots=True)  # children: their parent's
        target = None if to_queue is None else queue_name(to_queue)
        done: list[str] = []
        skipped: list[str] = []
        for batch in self._batches(flt, batch_size):
            for row in self.store.runs_by_ids(batch):
                goes_to = target or row.queue
                if goes_to is None or _still_pausing(row):
                    skipped.append(str(row.id))
                    continue
                if not dry_run and not self._resume_one(row.id, row.status, goes_to):
                    skipped.append(str(row.id))
                    continue
                done.append(str(row.id))
        return BulkResult("resume", len(done), tuple(done), tuple(skipped), dry_run)

    def _resume_one(self, run_id: uuid.UUID, status: str, queue: str) -> bool:
        if status == RunStatus.PAUSED:
            return self.store.unpause_to_queue(run_id, queue)
        row = self.store.get_run(run_id, self.owner)
        if row is None or row.status not in ("failed", "cancelled"):
            return False
        try:
            self._requeue(row, queue)
        except (RunAlreadyRunning, RedactedInputs):  # left as it is (not resumed)
            return False
        return True

    def _bulk_filter(self, status: str | Iterable[str] | None, statuses: list[str],
                     all_runs: bool, workflow: str | None, owner: str | None,
                     tag: str | None, since: datetime | timedelta | None,
                     until: datetime | timedelta | None, queue: str | None,
                     executor: str | None, parent: str | None, forked_from: str | None,
                     top_level: bool) -> RunFilter:
        chosen = (status, workflow, owner, tag, since, until, queue, executor, parent,
                  forked_from)
        if not all_runs and all(value is None for value in chosen) and not top_level:
            raise ConfigurationError("no filter given: name the runs (status, workflow, "
                                     "owner, tag, since, until, queue, executor, ...), or "
                                     "pass all_runs=True (--all) to act on every run")
        return self._filter(statuses, workflow, owner, tag, since, until, parent, queue,
                            executor, forked_from, top_level)

    def _batches(self, flt: RunFilter, batch_size: int) -> Iterator[list[uuid.UUID]]:
        """The matching run ids, newest first, ``batch_size`` at a time. Each batch is
        read after the previous one was acted on; the id cursor moves past it whatever
        happened to its runs."""
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise ConfigurationError("batch_size must be between 1 and 10000")
        before: uuid.UUID | None = None
        while True:
            batch = self.store.list_run_ids(flt, batch_size, before)
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            before = batch[-1]


__all__ = ["BulkResult", "LedgerBulk"]
