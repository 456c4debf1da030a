"""The read side of the store: runs, steps, usage and context as rows, one query or one
read transaction each. A part of ``SqlStore``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Uuid,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
)

from . import history
from .core import StoreCore
from .rows import AttemptRow, RunFilter, RunRow, StepRow, UsageRow
from .schema import attempts, run_tags, runs, steps, usage


class StoreReads(StoreCore):
    """Reads of recorded runs; a part of ``SqlStore``."""

    # -- reads ---------------------------------------------------------------------
    def get_run(self, run_id: uuid.UUID, owner: str | None) -> RunRow | None:
        with self._read() as conn:
            return self._get_run(conn, run_id, owner)

    def get_run_with_steps(
        self, run_id: uuid.UUID, owner: str | None
    ) -> tuple[RunRow, list[StepRow], list[AttemptRow]] | None:
        """A run, its steps, and the attempts of them kept in the history."""
        with self._read() as conn:
            run = self._get_run(conn, run_id, owner)
            if run is None:
                return None
            found = self._get_steps(conn, run_id)
            tried = history.attempts_of(conn, [run_id]) if _retried(found) else {}
            return run, found, tried.get(run_id, [])

    def _get_run(self, conn: Connection, run_id: uuid.UUID, owner: str | None) -> RunRow | None:
        query = select(runs).where(runs.c.id == run_id)
        if owner is not None:
            query = query.where(runs.c.owner == owner)
        row = conn.execute(query).first()
        if row is None:
            return None
        tags = tuple(conn.execute(select(run_tags.c.tag).where(run_tags.c.run_id == run_id)
                                  .order_by(run_tags.c.tag)).scalars())
        return RunRow.from_row(row, tags)

    def get_step(self, run_id: uuid.UUID, position: int
                 ) -> tuple[StepRow, list[AttemptRow], list[UsageRow]] | None:
        """One step with its attempt history and usage, without the rest of the run."""
        with self._read() as conn:
            row = conn.execute(select(steps).where(steps.c.run_id == run_id,
                                                   steps.c.position == position)).first()
            if row is None:
                return None
            tried = conn.execute(select(*[attempts.c[n] for n in AttemptRow.__slots__]).where(
                attempts.c.run_id == run_id, attempts.c.position == position)
                .order_by(attempts.c.attempt)).all()
            used = conn.execute(select(*[usage.c[n] for n in UsageRow.__slots__]).where(
                usage.c.run_id == run_id, usage.c.position == position)
                .order_by(usage.c.id)).all()
            return (StepRow(*row), [AttemptRow(*r) for r in tried],
                    [UsageRow(*r) for r in used])

    def get_steps(self, run_id: uuid.UUID) -> list[StepRow]:
        with self._read() as conn:
            return self._get_steps(conn, run_id)

    @staticmethod
    def _get_steps(conn: Connection, run_id: uuid.UUID) -> list[StepRow]:
        rows = conn.execute(select(steps).where(steps.c.run_id == run_id)
                            .order_by(steps.c.position))
        return [StepRow(*row) for row in rows]

    def get_status(self, run_id: uuid.UUID) -> tuple[str, str | None] | None:
        with self._read() as conn:
            row = conn.execute(select(runs.c.status, runs.c.lease_token)
                               .where(runs.c.id == run_id)).first()
            return None if row is None else (row[0], row[1])

    @staticmethod
    def _filtered(query: Any, flt: RunFilter) -> Any:
        conds = []
        if flt.tag is not None:
            query = query.join(run_tags, and_(run_tags.c.run_id == runs.c.id,
                                              run_tags.c.tag == flt.tag))
        if flt.owner is not None:
            conds.append(runs.c.owner == flt.owner)
        if flt.status:
            conds.append(runs.c.status.in_(list(flt.status)))
        if flt.workflow is not None:
            conds.append(runs.c.workflow == flt.workflow)
        if flt.parent_id is not None:
            conds.append(runs.c.parent_id == flt.parent_id)
        if flt.roots:
            parent = runs.alias("parent")
            conds.append(or_(runs.c.parent_id.is_(None), ~exists(
                select(parent.c.id).where(parent.c.id == runs.c.parent_id))))
        # Ids are UUIDv7: a time window is also an id range, which the primary key serves.
        if flt.since is not None:
            conds += [runs.c.id >= _id_floor(flt.since - 60_000_000),
                      runs.c.created_at >= flt.since]
        if flt.until is not None:
            conds += [runs.c.id < _id_floor(flt.until + 60_000_000),
                      runs.c.created_at < flt.until]
        return query.where(*conds)

    def list_runs(self, flt: RunFilter, limit: int,
                  before_id: uuid.UUID | None) -> list[RunRow]:
        """Newest first (ids are time-ordered UUIDv7), keyset-paginated by id."""
        query = self._filtered(select(runs), flt)
        if before_id is not None:
            query = query.where(runs.c.id < before_id)
        query = query.order_by(runs.c.id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
            tags: dict[uuid.UUID, list[str]] = {}
            if rows:
                ids = [r.id for r in rows]
                for run_id, tag in conn.execute(
                        select(run_tags.c.run_id, run_tags.c.tag)
                        .where(run_tags.c.run_id.in_(ids)).order_by(run_tags.c.tag)):
                    tags.setdefault(run_id, []).append(tag)
            return [RunRow.from_row(r, tuple(tags.get(r.id, ()))) for r in rows]

    def list_run_ids(self, flt: RunFilter, limit: int,
                     before_id: uuid.UUID | None) -> list[uuid.UUID]:
        """Like ``list_runs``, ids only (what a purge needs to delete)."""
        query = self._filtered(select(runs.c.id), flt)
        if before_id is not None:
            query = query.where(runs.c.id < before_id)
        with self._read() as conn:
            return list(conn.execute(query.order_by(runs.c.id.desc()).limit(limit)).scalars())

    def runs_by_ids(self, run_ids: Sequence[uuid.UUID]) -> list[RunRow]:
        """These runs (with tags), in the order given; unknown ids are left out."""
        if not run_ids:
            return []
        with self._read() as conn:
            rows = {row.id: row for row in conn.execute(
                select(runs).where(self._among(runs.c.id, list(run_ids))))}
            tags: dict[uuid.UUID, list[str]] = {}
            for run_id, tag in conn.execute(
                    select(run_tags.c.run_id, run_tags.c.tag)
                    .where(self._among(run_tags.c.run_id, list(rows))).order_by(run_tags.c.tag)):
                tags.setdefault(run_id, []).append(tag)
        return [RunRow.from_row(rows[i], tuple(tags.get(i, ()))) for i in run_ids if i in rows]

    def family_of(self, run_ids: Sequence[uuid.UUID]
                  ) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        """Every descendant of these runs (children, theirs, ...): (id, parent, status)."""
        if not run_ids:
            return []
        columns = (runs.c.id, runs.c.parent_id, runs.c.status)
        tree = select(*columns).where(self._among(runs.c.parent_id, list(run_ids))).cte(
            "family", recursive=True)
        tree = tree.union_all(select(*columns).where(runs.c.parent_id == tree.c.id))
        with self._read() as conn:
            return [(row[0], row[1], row[2]) for row in conn.execute(select(tree))]

    def steps_of(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[StepRow]]:
        """The steps of several runs in one query (for exports and archives)."""
        found: dict[uuid.UUID, list[StepRow]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        query = (select(steps).where(steps.c.run_id.in_(list(run_ids)))
                 .order_by(steps.c.run_id, steps.c.position))
        with self._read() as conn:
            for row in conn.execute(query):
                found[row.run_id].append(StepRow(*row))
        return found

    def attempts_of(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[AttemptRow]]:
        """The attempt history rows of several runs (for exports and archives)."""
        with self._read() as conn:
            return history.attempts_of(conn, run_ids)

    def usage_of(self, run_ids: Sequence[uuid.UUID]) -> list[UsageRow]:
        """Every usage record of these runs, in recording order."""
        if not run_ids:
            return []
        query = (select(*[usage.c[name] for name in UsageRow.__slots__])
                 .where(usage.c.run_id.in_(list(run_ids))).order_by(usage.c.id))
        with self._read() as conn:
            return [UsageRow(*row) for row in conn.execute(query)]

    def descendants(self, run_id: uuid.UUID) -> list[uuid.UUID]:
        """Child runs, their children, and so on (a recursive query)."""
        tree = select(runs.c.id).where(runs.c.parent_id == run_id).cte(recursive=True)
        tree = tree.union_all(select(runs.c.id).where(runs.c.parent_id == tree.c.id))
        with self._read() as conn:
            return list(conn.execute(select(tree.c.id)).scalars())

    def usage_groups(self, flt: RunFilter, since: int | None, until: int | None,
                     group_by: str) -> list[Any]:
        """(key, calls, input, output, cached, reasoning, cost, unpriced) per group."""
        key = {"workflow": runs.c.workflow, "owner": runs.c.owner,
               "model": usage.c.model}[group_by]
        unpriced = func.sum(case((usage.c.cost_usd.is_(None), 1), else_=0))
        query = select(key, func.count(), func.sum(usage.c.input_tokens),
                       func.sum(usage.c.output_tokens), func.sum(usage.c.cached_input_tokens),
                       func.sum(usage.c.reasoning_tokens), func.sum(usage.c.cost_usd),
                       unpriced).select_from(usage.join(runs, runs.c.id == usage.c.run_id))
        query = self._filtered(query, flt)
        if since is not None:
            query = query.where(usage.c.recorded_at >= since)
        if until is not None:
            query = query.where(usage.c.recorded_at < until)
        with self._read() as conn:
            return list(conn.execute(query.group_by(key).order_by(key)))

    def ids_with_prefix(self, hex_prefix: str, owner: str | None,
                        limit: int = 2) -> list[uuid.UUID]:
        """Run ids starting with ``hex_prefix`` (lower-case hex, no dashes): an id range."""
        low = uuid.UUID(hex_prefix.ljust(32, "0"))
        high = uuid.UUID(hex_prefix.ljust(32, "f"))
        query = select(runs.c.id).where(runs.c.id >= low, runs.c.id <= high)
        if owner is not None:
            query = query.where(runs.c.owner == owner)
        with self._read() as conn:
            return list(conn.execute(query.order_by(runs.c.id).limit(limit)).scalars())

    def timing_rows(self, flt: RunFilter) -> tuple[list[Any], list[Any], list[Any]]:
        """For statistics: (workflow, status, started, completed) of the matching runs,
        (workflow, step name, status, started, completed, attempts) of their steps, and
        (workflow, step name, failed attempts) from their attempt history."""
        run_query = self._filtered(
            select(runs.c.id, runs.c.workflow, runs.c.status, runs.c.started_at,
                   runs.c.completed_at), flt)
        matching = run_query.subquery()
        step_query = (select(matching.c.workflow, steps.c.name, steps.c.status,
                             steps.c.started_at, steps.c.completed_at, steps.c.attempts)
                      .join(matching, matching.c.id == steps.c.run_id))
        failures = (select(matching.c.workflow, steps.c.name, func.count())
                    .select_from(attempts)
                    .join(steps, and_(steps.c.run_id == attempts.c.run_id,
                                      steps.c.position == attempts.c.position))
                    .join(matching, matching.c.id == attempts.c.run_id)
                    .where(attempts.c.status == "failed")
                    .group_by(matching.c.workflow, steps.c.name))
        with self._read() as conn:
            return (list(conn.execute(run_query)), list(conn.execute(step_query)),
                    list(conn.execute(failures)))

    def _among(self, column: Any, ids: list[uuid.UUID]) -> Any:
        """``column IN ids``; on PostgreSQL as ``= ANY(array)``, one parameter instead of
        thousands, which keeps batch deletes cheap to parse and plan."""
        if self.backend.name == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY  # loaded with the backend

            return column == any_(bindparam("ids", ids, type_=ARRAY(Uuid())))
        return column.in_(ids)

    def live_step_counts(
        self, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[int, int, int, int]]:
        """(total, completed, failed, skipped) for runs whose totals are not final yet."""
        if not run_ids:
            return {}
        query = (select(steps.c.run_id, steps.c.status, func.count())
                 .where(steps.c.run_id.in_(list(run_ids)))
                 .group_by(steps.c.run_id, steps.c.status))
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
        query = select(runs).where(runs.c.status == "running",
                                   runs.c.executor.startswith(host_prefix, autoescape=True))
        with self._read() as conn:
            return [RunRow.from_row(r, ()) for r in conn.execute(query)]


def _retried(found: Sequence[StepRow]) -> bool:
    """Whether any step may have attempts in the history: retried, or running (a failed
    attempt may be waiting for its retry)."""
    return any(row.attempts > 1 or row.status == "running" for row in found)


def _id_floor(micros: int) -> uuid.UUID:
    """The smallest UUIDv7 whose timestamp is at or after ``micros`` (for id range scans)."""
    millis = max(micros // 1000, 0)
    return uuid.UUID(int=millis << 80)
