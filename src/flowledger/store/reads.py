"""The read side of the store: runs, steps, attempts and usage as rows, one query or one
read transaction each. A part of ``SqlStore``; the queries are in ``statements/reads.py``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from . import history
from .core import StoreCore
from .rows import AttemptRow, LogRow, RunFilter, RunRow, StepRow, UsageRow
from .statements import logs as logs_sql
from .statements import reads as reads_sql
from .statements import trends as trends_sql


class StoreReads(StoreCore):
    """Reads of recorded runs; a part of ``SqlStore``."""

    # -- reads ---------------------------------------------------------------------
    def get_run(self, run_id: uuid.UUID, owner: str | None) -> RunRow | None:
        with self._read() as conn:
            return self._get_run(conn, run_id, owner)

    def _get_run(self, conn: Connection, run_id: uuid.UUID, owner: str | None) -> RunRow | None:
        row = conn.execute(reads_sql.run(run_id, owner)).first()
        if row is None:
            return None
        tags = tuple(conn.execute(reads_sql.tags_of(run_id)).scalars())
        return self.sealing.run_row(RunRow.from_row(row, tags))

    def ended_since(self, since: int, owner: str | None, limit: int) -> list[uuid.UUID]:
        """Ids of the runs ``owner`` (None: anyone) can see that ended at or after
        ``since`` (microseconds), oldest end first, at most ``limit``."""
        with self._read() as conn:
            return list(conn.execute(reads_sql.ended_since(since, owner, limit)).scalars())

    def get_step(self, run_id: uuid.UUID, position: int
                 ) -> tuple[StepRow, list[AttemptRow], list[UsageRow]] | None:
        """One step with its attempt history and usage, without the rest of the run."""
        with self._read() as conn:
            row = conn.execute(reads_sql.step(run_id, position)).first()
            if row is None:
                return None
            tried = conn.execute(reads_sql.step_attempts(run_id, position)).all()
            used = conn.execute(reads_sql.step_usage(run_id, position)).all()
            return (self.sealing.step_row(StepRow(*row)),
                    [self.sealing.attempt_row(AttemptRow(*r)) for r in tried],
                    [UsageRow(*r) for r in used])

    def get_steps(self, run_id: uuid.UUID) -> list[StepRow]:
        with self._read() as conn:
            return self._get_steps(conn, run_id)

    def _get_steps(self, conn: Connection, run_id: uuid.UUID) -> list[StepRow]:
        rows = conn.execute(reads_sql.steps_of_run(run_id))
        return [self.sealing.step_row(StepRow(*row)) for row in rows]

    def logs_of(self, run_id: uuid.UUID, position: int | None = None) -> list[LogRow]:
        """What a run's step attempts logged (one step's with ``position``), in step then
        attempt order."""
        with self._read() as conn:
            return [self.sealing.log_row(run_id, LogRow(*row))
                    for row in conn.execute(logs_sql.logs_of(run_id, position))]

    def get_status(self, run_id: uuid.UUID) -> tuple[str, str | None] | None:
        with self._read() as conn:
            row = conn.execute(reads_sql.status(run_id)).first()
            return None if row is None else (row[0], row[1])

    def list_runs(self, flt: RunFilter, limit: int,
                  before_id: uuid.UUID | None) -> list[RunRow]:
        """Newest first (ids are time-ordered UUIDv7), keyset-paginated by id."""
        query = reads_sql.list_runs(flt, limit, before_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
            tags: dict[uuid.UUID, list[str]] = {}
            if rows:
                ids = [r.id for r in rows]
                for run_id, tag in conn.execute(reads_sql.tags_of_runs(ids)):
                    tags.setdefault(run_id, []).append(tag)
            return [self.sealing.run_row(RunRow.from_row(r, tuple(tags.get(r.id, ()))))
                    for r in rows]

    def list_run_ids(self, flt: RunFilter, limit: int,
                     before_id: uuid.UUID | None) -> list[uuid.UUID]:
        """Like ``list_runs``, ids only (what a purge needs to delete)."""
        query = reads_sql.list_run_ids(flt, limit, before_id)
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def runs_by_ids(self, run_ids: Sequence[uuid.UUID]) -> list[RunRow]:
        """These runs (with tags), in the order given; unknown ids are left out."""
        if not run_ids:
            return []
        with self._read() as conn:
            rows = {row.id: row for row in conn.execute(
                reads_sql.runs_among(list(run_ids), self.dialect))}
            tags: dict[uuid.UUID, list[str]] = {}
            for run_id, tag in conn.execute(reads_sql.tags_among(list(rows), self.dialect)):
                tags.setdefault(run_id, []).append(tag)
        return [self.sealing.run_row(RunRow.from_row(rows[i], tuple(tags.get(i, ()))))
                for i in run_ids if i in rows]

    def family_of(self, run_ids: Sequence[uuid.UUID]
                  ) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        """Every descendant of these runs (children, theirs, ...): (id, parent, status)."""
        if not run_ids:
            return []
        query = reads_sql.family_of(list(run_ids), self.dialect)
        with self._read() as conn:
            return [(row[0], row[1], row[2]) for row in conn.execute(query)]

    def steps_of(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[StepRow]]:
        """The steps of several runs in one query (for exports and archives)."""
        found: dict[uuid.UUID, list[StepRow]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        query = reads_sql.steps_of(run_ids)
        with self._read() as conn:
            for row in conn.execute(query):
                found[row.run_id].append(self.sealing.step_row(StepRow(*row)))
        return found

    def attempts_of(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[AttemptRow]]:
        """The attempt history rows of several runs (for exports and archives)."""
        with self._read() as conn:
            found = history.attempts_of(conn, run_ids)
        for tried in found.values():
            for attempt in tried:
                self.sealing.attempt_row(attempt)
        return found

    def usage_of(self, run_ids: Sequence[uuid.UUID]) -> list[UsageRow]:
        """Every usage record of these runs, in recording order."""
        if not run_ids:
            return []
        query = reads_sql.usage_of(run_ids)
        with self._read() as conn:
            return [UsageRow(*row) for row in conn.execute(query)]

    def usage_groups(self, flt: RunFilter, since: int | None, until: int | None,
                     group_by: str) -> list[Any]:
        """(key, calls, input, output, cached, reasoning, cost, unpriced) per group."""
        query = reads_sql.usage_groups(flt, since, until, group_by)
        with self._read() as conn:
            return list(conn.execute(query))

    def ids_with_prefix(self, hex_prefix: str, owner: str | None,
                        limit: int = 2) -> list[uuid.UUID]:
        """Run ids starting with ``hex_prefix`` (lower-case hex, no dashes): an id range."""
        query = reads_sql.ids_with_prefix(hex_prefix, owner, limit)
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def timing_rows(self, flt: RunFilter) -> tuple[list[Any], list[Any], list[Any]]:
        """For statistics: (workflow, status, started, completed) of the matching runs,
        (workflow, step name, status, started, completed, attempts) of their steps, and
        (workflow, step name, failed attempts) from their attempt history."""
        run_query, step_query, failures = reads_sql.timing_rows(flt)
        with self._read() as conn:
            return (list(conn.execute(run_query)), list(conn.execute(step_query)),
                    list(conn.execute(failures)))

    def trend_rows(self, flt: RunFilter, since: int | None, until: int | None,
                   bucket_us: int) -> tuple[list[Any], list[Any], list[Any]]:
        """For analytics, from one snapshot: (bucket, status, runs), (bucket, duration)
        of completed runs, and (bucket, model, workflow, calls, tokens, cost) of LLM
        calls recorded between ``since`` and ``until``."""
        window = RunFilter(owner=flt.owner, workflow=flt.workflow, tag=flt.tag,
                           queue=flt.queue)
        with self._read() as conn:
            return (list(conn.execute(trends_sql.run_counts(flt, bucket_us))),
                    list(conn.execute(trends_sql.run_durations(flt, bucket_us))),
                    list(conn.execute(trends_sql.usage_series(window, since, until,
                                                              bucket_us))))

    def live_step_counts(
        self, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[int, int, int, int]]:
        """(total, completed, failed, skipped) for runs whose totals are not final yet."""
        if not run_ids:
            return {}
        query = reads_sql.live_step_counts(run_ids)
        counts: dict[uuid.UUID, list[int]] = {}
        with self._read() as conn:
            for run_id, status, n in conn.execute(query):
                entry = counts.setdefault(run_id, [0, 0, 0, 0])
                entry[0] += n
                index = {"completed": 1, "failed": 2, "skipped": 3}.get(status)
                if index:
                    entry[index] += n
        return {k: (v[0], v[1], v[2], v[3]) for k, v in counts.items()}

    def running_runs(self, host_prefix: str) -> list[RunRow]:
        """Runs marked running whose executor was a process on this host."""
        query = reads_sql.running_runs(host_prefix)
        with self._read() as conn:
            return [self.sealing.run_row(RunRow.from_row(r, ())) for r in conn.execute(query)]

