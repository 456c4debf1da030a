"""The read side of the Ledger: getting, listing, comparing, totalling, exporting and
retaining runs. ``Ledger`` inherits these methods; they are documented there."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from . import ids, validation
from .artifacts import RunArtifacts
from .errors import (
    ConfigurationError,
    InvalidCursor,
    RunNotFound,
    StepNotFound,
)
from .ledgerbase import LedgerBase
from .models import (
    Run,
    RunPage,
    RunStatus,
    Step,
    SummaryPage,
    UsageGroup,
    UsageTotals,
    usd,
)
from .records import marks_token, summary
from .reports import RunDiff, Stats, Trends, compute_stats, compute_trends, diff_runs
from .retention import FINISHED, PurgeReport, iter_runs, purge
from .store import RunFilter, RunRow, StepRow, UsageRow


def _micros(value: datetime | timedelta | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return ids.now_us() - int(value.total_seconds() * 1_000_000)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigurationError(f"{name} must be timezone-aware (e.g. datetime.now(UTC))")
        return int(value.timestamp() * 1_000_000)
    raise ConfigurationError(f"{name} must be a datetime or a timedelta, not {value!r}")


def _seal(run_id: uuid.UUID, flt: RunFilter) -> bytes:
    """A check over the page boundary and the listing's filters: a cursor that was made
    up, mangled, or taken from another listing is refused rather than misread. (The
    time window is left out: "2h ago" moves between pages.)"""
    extra = {"executor": flt.executor, "forked_from": flt.forked_from and str(flt.forked_from),
             "top_level": flt.roots or None}
    listing = json.dumps([sorted(flt.status), flt.workflow, flt.owner, flt.tag,
                          str(flt.parent_id) if flt.parent_id else None]
                         + ([flt.queue] if flt.queue is not None else [])
                         + sorted((k, v) for k, v in extra.items() if v is not None))
    return hashlib.blake2b(run_id.bytes + listing.encode(), digest_size=4,
                           person=b"flowledger-page").digest()


def encode_cursor(run_id: uuid.UUID, flt: RunFilter) -> str:
    return base64.urlsafe_b64encode(run_id.bytes + _seal(run_id, flt)).decode().rstrip("=")


def decode_cursor(cursor: str, flt: RunFilter) -> uuid.UUID:
    refusal = (f"invalid cursor {cursor[:40]!r}: pass next_cursor from a previous page of "
               "the same listing (same filters) unchanged")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        run_id = uuid.UUID(bytes=raw[:16])
    except (ValueError, binascii.Error, TypeError):
        raise InvalidCursor(refusal) from None
    if len(raw) != 20 or not hmac.compare_digest(raw[16:], _seal(run_id, flt)):
        raise InvalidCursor(refusal)
    return run_id


def _statuses(status: str | Iterable[str] | None) -> list[str]:
    statuses = [status] if isinstance(status, str) else list(status or ())
    for value in statuses:
        if value not in RunStatus.__members__.values():
            raise ConfigurationError(f"unknown status {value!r}; expected one of "
                                     f"{', '.join(s.value for s in RunStatus)}")
    return statuses


def _run_id_filter(value: str | None) -> uuid.UUID | None:
    """A run id given as a filter (parent, forked_from); RunNotFound when it is none."""
    if value is None:
        return None
    parsed = ids.parse_run_id(value)
    if parsed is None:
        raise RunNotFound(value)
    return parsed


class LedgerQueries(LedgerBase):
    """Queries over recorded runs, scoped to the Ledger's owner when it has one."""

    def step(self, run_id: str | uuid.UUID, position: int) -> Step:
        """One step of a run (1-based position) with its attempts and usage, read
        without the rest of the run. Raises RunNotFound, StepNotFound.

        Example: ``ledger.step(run_id, 3).attempt_history``
        """
        row = self._visible(run_id)
        found = self.store.get_step(row.id, position)
        if found is None:
            raise StepNotFound(str(row.id), position)
        return self._records.step_of(row, *found)

    def runs(self, *, status: str | Iterable[str] | None = None, workflow: str | None = None,
             owner: str | None = None, tag: str | None = None,
             since: datetime | timedelta | None = None,
             until: datetime | timedelta | None = None, parent: str | None = None,
             limit: int = 50, cursor: str | None = None, queue: str | None = None,
             executor: str | None = None, forked_from: str | None = None,
             top_level: bool = False) -> RunPage:
        """Runs newest first, filtered, one page at a time (keyset pagination).

        ``since`` is inclusive and ``until`` exclusive; a timedelta means "that long
        ago". ``parent`` lists a run's child runs, ``top_level`` only runs that are no
        other run's child, ``forked_from`` the forks of a run, ``queue`` the runs
        submitted to a queue, ``executor`` the runs a process executes or last executed
        (``host:pid:start`` as ``Ledger.workers()`` names it, or a prefix ending with
        ``:`` such as ``"db-1:"`` for every process of a host). Pass each page's
        ``next_cursor`` back to get the next one; it is None on the last page
        (``cursor=None`` starts again from the newest).
        Example: ``ledger.runs(status="failed", since=timedelta(hours=2))``.
        """
        if not 1 <= limit <= 1000:
            raise ConfigurationError("limit must be between 1 and 1000")
        flt = self._filter(status, workflow, owner, tag, since, until, parent, queue,
                           executor, forked_from, top_level)
        rows = self.store.list_runs(flt, limit + 1,
                                    decode_cursor(cursor, flt) if cursor else None)
        more = len(rows) > limit
        rows = rows[:limit]
        live = self.store.live_step_counts([r.id for r in rows
                                            if not RunStatus(r.status).finished])
        runs = tuple(self._to_run(r, None, live.get(r.id)) for r in rows)
        return RunPage(runs, encode_cursor(rows[-1].id, flt) if more and rows else None)

    def summaries(self, *, status: str | Iterable[str] | None = None,
                  workflow: str | None = None, owner: str | None = None,
                  tag: str | None = None, queue: str | None = None,
                  since: datetime | timedelta | None = None,
                  until: datetime | timedelta | None = None, parent: str | None = None,
                  limit: int = 50, cursor: str | None = None, executor: str | None = None,
                  forked_from: str | None = None, top_level: bool = False) -> SummaryPage:
        """Run summaries, newest first, one page at a time: what a list of runs shows
        (status, step counts, duration, tokens and cost of the run's own LLM calls, tags,
        lineage), as JSON-ready dicts, read in one statement without inputs or outputs,
        so a page costs the same whatever the payloads. Filters and cursors as
        ``runs()`` (the cursors are interchangeable). ``SummaryPage.revision`` changes
        whenever the page would read back differently.

        Example: ``ledger.summaries(status="failed", queue="emails").runs[0]["counts"]``
        """
        flt, limit, before = self._listing(status, workflow, owner, tag, since, until,
                                           parent, queue, limit, cursor,
                                           (executor, forked_from, top_level))
        rows = self.store.run_summaries(flt, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        load = self.store.backend.load_id
        page = [summary(row, load) for row in rows]
        last = load(rows[-1][0]) if rows else None
        marks = [(row[0], row[22], row[4], row[21], row[16], *row[23:27]) for row in rows]
        return SummaryPage(page, encode_cursor(last, flt) if more and last else None,
                           marks_token(marks, more))

    def summaries_revision(self, *, status: str | Iterable[str] | None = None,
                           workflow: str | None = None, owner: str | None = None,
                           tag: str | None = None, queue: str | None = None,
                           since: datetime | timedelta | None = None,
                           until: datetime | timedelta | None = None,
                           parent: str | None = None, limit: int = 50,
                           cursor: str | None = None, executor: str | None = None,
                           forked_from: str | None = None, top_level: bool = False) -> str:
        """``summaries(...).revision`` read cheaply (one light statement): what a
        dashboard polling a list compares. Example:
        ``if ledger.summaries_revision(status="running") != seen: ...``"""
        flt, limit, before = self._listing(status, workflow, owner, tag, since, until,
                                           parent, queue, limit, cursor,
                                           (executor, forked_from, top_level))
        rows = self.store.run_marks(flt, limit + 1, before)
        return marks_token(rows[:limit], len(rows) > limit)

    def _listing(self, status: str | Iterable[str] | None, workflow: str | None,
                 owner: str | None, tag: str | None, since: datetime | timedelta | None,
                 until: datetime | timedelta | None, parent: str | None,
                 queue: str | None, limit: int, cursor: str | None,
                 more: tuple[str | None, str | None, bool] = (None, None, False)
                 ) -> tuple[RunFilter, int, uuid.UUID | None]:
        if not 1 <= limit <= 1000:
            raise ConfigurationError("limit must be between 1 and 1000")
        flt = self._filter(status, workflow, owner, tag, since, until, parent, queue, *more)
        return flt, limit, decode_cursor(cursor, flt) if cursor else None

    def diff(self, run_a: str | uuid.UUID, run_b: str | uuid.UUID) -> RunDiff:
        """Compare two runs position by position: status, duration and output changes."""
        return diff_runs(self.get(run_a), self.get(run_b))

    def stats(self, *, workflow: str | None = None,
              since: datetime | timedelta | None = None,
              until: datetime | timedelta | None = None) -> Stats:
        """Per workflow: runs, success rate, p50/p95 duration, LLM tokens and cost; per
        step name: count, failure rate, p50/p95. Example:
        ``ledger.stats(since=timedelta(days=1))``."""
        flt = RunFilter(owner=self.owner,
                        workflow=validation.optional_name(workflow, "the workflow filter"),
                        since=_micros(since, "since"),
                        until=_micros(until, "until"))
        usage = {str(row[0]): (int((row[2] or 0) + (row[3] or 0)),
                               None if row[6] is None else usd(float(row[6])))
                 for row in self.store.usage_groups(flt, None, None, "workflow")}
        return compute_stats(*self.store.timing_rows(flt), usage_by_workflow=usage)

    def trends(self, *, since: datetime | timedelta = timedelta(days=1),
               until: datetime | timedelta | None = None, workflow: str | None = None,
               buckets: int = 48) -> Trends:
        """Analytics over a window cut into ``buckets`` equal buckets: runs created per
        bucket by status, p50/p95 duration of the completed ones, LLM tokens and cost by
        model and by workflow over time, and the window's slowest and most failing
        steps. Example: ``ledger.trends(since=timedelta(days=7), buckets=28).success_rate``
        """
        if not 1 <= buckets <= 1000:
            raise ConfigurationError("buckets must be between 1 and 1000")
        start = _micros(since, "since")
        end = _micros(until, "until") or ids.now_us()
        if start is None:
            raise ConfigurationError("since is required")
        if end <= start:
            raise ConfigurationError("the window is empty: until must be after since")
        bucket_us = max(-(-(end - start) // buckets) // 1_000_000, 1) * 1_000_000
        first = start // bucket_us
        count = (end - 1) // bucket_us - first + 1
        flt = RunFilter(owner=self.owner,
                        workflow=validation.optional_name(workflow, "the workflow filter"),
                        since=first * bucket_us, until=end)
        counts, durations, spending = self.store.trend_rows(flt, first * bucket_us, end,
                                                            bucket_us)
        return compute_trends(first, count, bucket_us, counts, durations, spending,
                              self.stats(workflow=workflow, since=since, until=until).steps)

    def usage(self, *, since: datetime | timedelta | None = None,
              until: datetime | timedelta | None = None, group_by: str = "workflow",
              workflow: str | None = None, owner: str | None = None) -> list[UsageGroup]:
        """LLM usage and cost totals per workflow, model or owner, for calls recorded in
        the window. Example: ``ledger.usage(since=timedelta(days=1), group_by="model")``."""
        if group_by not in ("workflow", "model", "owner"):
            raise ConfigurationError(f"group_by must be workflow, model or owner, "
                                     f"not {group_by!r}")
        flt = self._filter(None, workflow, owner, None, None, None, None)
        groups = []
        for key, calls, inp, out, cached, reasoning, cost, unpriced in self.store.usage_groups(
                flt, _micros(since, "since"), _micros(until, "until"), group_by):
            groups.append(UsageGroup(str(key), UsageTotals(
                int(calls), int(inp or 0), int(out or 0), int(cached or 0), int(reasoning or 0),
                None if cost is None else usd(float(cost)), int(unpriced or 0),
                (str(key),) if group_by == "model" else ())))
        return groups

    def export(self, run_id: str | uuid.UUID | None = None, *,
               status: str | Iterable[str] | None = None, workflow: str | None = None,
               owner: str | None = None, tag: str | None = None,
               since: datetime | timedelta | None = None,
               until: datetime | timedelta | None = None) -> Iterator[Run]:
        """Runs with their steps, newest first, streamed in batches (constant memory).

        Example: ``for run in ledger.export(workflow="triage"): print(run.to_dict())``
        """
        if run_id is not None:
            yield self.get(run_id)
            return
        flt = self._filter(status, workflow, owner, tag, since, until, None)
        yield from iter_runs(self.store, flt, self._full_runs)

    def purge(self, older_than: timedelta | float, *,
              status: str | Iterable[str] | None = None, archive: str | None = None,
              dry_run: bool = False,
              progress: Callable[[int], None] | None = None) -> PurgeReport:
        """Delete finished runs created more than ``older_than`` (a timedelta, or
        seconds) ago, with their steps and their child runs.

        ``status`` narrows to some final states of the top run; ``archive`` first writes
        every purged run with its steps to a ``.jsonl.gz`` file. Runs still pending or
        running are never purged, nor are the trees they belong to.
        Example: ``ledger.purge(timedelta(days=90), archive="old.jsonl.gz")``
        """
        if isinstance(older_than, int | float) and not isinstance(older_than, bool):
            older_than = timedelta(seconds=older_than)
        if not isinstance(older_than, timedelta):
            raise ConfigurationError(f"older_than must be a timedelta or a number of "
                                     f"seconds, not {older_than!r}")
        if older_than.total_seconds() < 0:
            raise ConfigurationError("older_than must not be negative")
        statuses = _statuses(status) or list(FINISHED)
        active = [s for s in statuses if s not in FINISHED]
        if active:
            raise ConfigurationError(f"only finished runs can be purged, not {active[0]!r}")
        flt = RunFilter(owner=self.owner, status=statuses,
                        until=ids.now_us() - int(older_than.total_seconds() * 1_000_000))
        return purge(self.store, flt, self._full_runs, archive=archive, dry_run=dry_run,
                     blobs=self._runtime.artifacts, progress=progress)

    def artifacts(self, run_id: str | uuid.UUID | Run) -> RunArtifacts:
        """The artifacts of a run: ``save``, ``get``, ``read_bytes``, ``exists``, ``list``,
        ``delete``. Given a ``Run`` this Ledger returned, it is not looked up again.
        Example: ``ledger.artifacts(run_id).get("report.md")``"""
        assert self._runtime.artifacts is not None
        if isinstance(run_id, Run):
            parsed, owner = uuid.UUID(run_id.id), run_id.owner
        else:
            row = self._visible(run_id)
            parsed, owner = row.id, row.owner
        return RunArtifacts(self.store, self._runtime.artifacts, parsed, owner)

    def _filter(self, status: str | Iterable[str] | None, workflow: str | None,
                owner: str | None, tag: str | None, since: datetime | timedelta | None,
                until: datetime | timedelta | None, parent: str | None,
                queue: str | None = None, executor: str | None = None,
                forked_from: str | None = None, top_level: bool = False) -> RunFilter:
        statuses = _statuses(status)
        workflow = validation.optional_name(workflow, "the workflow filter")
        owner = validation.optional_name(owner, "the owner filter")
        tag = validation.optional_name(tag, "the tag filter")
        parent_id = _run_id_filter(parent)
        if top_level and parent_id is not None:
            raise ConfigurationError("a listing of a run's children (parent) cannot be "
                                     "top-level only (top_level)")
        scope = self.owner or owner
        if self.owner is not None and owner not in (None, self.owner):
            scope = "#" * 201  # another owner's runs from a scoped Ledger: no valid owner
        return RunFilter(owner=scope, status=statuses, workflow=workflow,
                         tag=tag, since=_micros(since, "since"), until=_micros(until, "until"),
                         parent_id=parent_id, roots=bool(top_level),
                         queue=validation.optional_name(queue, "the queue filter"),
                         executor=validation.optional_name(executor, "the executor filter",
                                                           300),
                         forked_from=_run_id_filter(forked_from))

    def _to_run(self, row: RunRow, steps: list[StepRow] | None,
                live: tuple[int, int, int, int] | None = None) -> Run:
        return self._records.run(row, steps, live)

    def _full_runs(self, rows: list[RunRow]) -> list[Run]:
        """Runs with steps, their own usage and context, for exports and archives."""
        ids_ = [row.id for row in rows]
        steps = self.store.steps_of(ids_)
        usage: dict[uuid.UUID, list[UsageRow]] = {run_id: [] for run_id in ids_}
        for record in self.store.usage_of(ids_):
            usage[record.run_id].append(record)
        contexts = self.store.contexts_of(ids_)
        attempts = self.store.attempts_of(ids_)
        serializer = self._runtime.serializer
        return [replace(self._records.run(row, steps[row.id], usage=usage[row.id],
                                          attempts=attempts.get(row.id, ())),
                        context={name: self._records.load(serializer.name, value)
                                 for name, value in contexts[row.id].items()})
                for row in rows]
