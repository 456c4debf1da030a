"""Reads of recorded runs: runs, their tags, steps, attempts and usage; run filters, lists,
families, usage totals and timing figures for statistics.

``filtered`` applies a ``RunFilter`` to any query over ``flowledger_runs``. Ids are
UUIDv7, so a time window is also an id range, which the primary key serves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select

from ..rows import RunFilter, UsageRow
from ..schema import attempts, run_tags, runs, steps, usage
from .common import among
from .history import ATTEMPT_COLUMNS

# The columns of a UsageRow, in its field order.
USAGE_COLUMNS = [usage.c[name] for name in UsageRow.__slots__]


def _id_floor(micros: int) -> uuid.UUID:
    """The smallest UUIDv7 whose timestamp is at or after ``micros`` (for id range scans)."""
    millis = max(micros // 1000, 0)
    return uuid.UUID(int=millis << 80)


def executor_matches(executor: str) -> ColumnElement[bool]:
    """Runs whose executor is ``executor`` exactly, or starts with it when it ends with
    ``:`` (every process of a host, ``host:``, or of a pid, ``host:pid:``)."""
    if executor.endswith(":"):
        return runs.c.executor.startswith(executor, autoescape=True)
    return runs.c.executor == executor


def filtered(query: Select[Any], flt: RunFilter) -> Select[Any]:
    """``query`` (over ``flowledger_runs``) restricted to the runs ``flt`` matches."""
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
    if flt.queue is not None:
        conds.append(runs.c.queue == flt.queue)
    if flt.executor is not None:
        conds.append(executor_matches(flt.executor))
    if flt.forked_from is not None:
        conds.append(runs.c.forked_from == flt.forked_from)
    if flt.since is not None:
        conds += [runs.c.id >= _id_floor(flt.since - 60_000_000),
                  runs.c.created_at >= flt.since]
    if flt.until is not None:
        conds += [runs.c.id < _id_floor(flt.until + 60_000_000),
                  runs.c.created_at < flt.until]
    if flt.completed_before is not None:
        conds.append(runs.c.completed_at < flt.completed_before)
    return query.where(*conds)


# -- one run -----------------------------------------------------------------------
def run(run_id: uuid.UUID, owner: str | None) -> Select[Any]:
    """A run, if the owner (None: anyone) can see it."""
    query = select(runs).where(runs.c.id == run_id)
    if owner is not None:
        query = query.where(runs.c.owner == owner)
    return query


def ended_since(since: int, owner: str | None, limit: int) -> Select[Any]:
    """Ids of runs that ended (completed, failed, cancelled) at or after ``since``, oldest
    end first: what ``otel export --since`` sends. (No index serves ``completed_at``: an
    operator's occasional scan.)"""
    query = select(runs.c.id).where(runs.c.completed_at >= since)
    if owner is not None:
        query = query.where(runs.c.owner == owner)
    return query.order_by(runs.c.completed_at, runs.c.id).limit(limit)


def tags_of(run_id: uuid.UUID) -> Select[Any]:
    return select(run_tags.c.tag).where(run_tags.c.run_id == run_id).order_by(run_tags.c.tag)


def status(run_id: uuid.UUID) -> Select[Any]:
    """(status, lease token) of a run."""
    return select(runs.c.status, runs.c.lease_token).where(runs.c.id == run_id)


def steps_of_run(run_id: uuid.UUID) -> Select[Any]:
    return select(steps).where(steps.c.run_id == run_id).order_by(steps.c.position)


def step(run_id: uuid.UUID, position: int) -> Select[Any]:
    return select(steps).where(steps.c.run_id == run_id, steps.c.position == position)


def step_attempts(run_id: uuid.UUID, position: int) -> Select[Any]:
    """The recorded attempts of one step, in order (the AttemptRow columns)."""
    return (select(*ATTEMPT_COLUMNS)
            .where(attempts.c.run_id == run_id, attempts.c.position == position)
            .order_by(attempts.c.attempt))


def step_usage(run_id: uuid.UUID, position: int) -> Select[Any]:
    """The usage records of one step, in recording order (the UsageRow columns)."""
    return (select(*USAGE_COLUMNS)
            .where(usage.c.run_id == run_id, usage.c.position == position)
            .order_by(usage.c.id))


# -- lists of runs -------------------------------------------------------------------
def list_runs(flt: RunFilter, limit: int, before_id: uuid.UUID | None) -> Select[Any]:
    """Matching runs, newest first (ids are time-ordered UUIDv7), keyset-paginated by id."""
    query = filtered(select(runs), flt)
    if before_id is not None:
        query = query.where(runs.c.id < before_id)
    return query.order_by(runs.c.id.desc()).limit(limit)


def list_run_ids(flt: RunFilter, limit: int, before_id: uuid.UUID | None) -> Select[Any]:
    """Like ``list_runs``, ids only."""
    query = filtered(select(runs.c.id), flt)
    if before_id is not None:
        query = query.where(runs.c.id < before_id)
    return query.order_by(runs.c.id.desc()).limit(limit)


def tags_of_runs(run_ids: list[uuid.UUID]) -> Select[Any]:
    """(run id, tag) of these runs, by tag."""
    return (select(run_tags.c.run_id, run_tags.c.tag)
            .where(run_tags.c.run_id.in_(run_ids)).order_by(run_tags.c.tag))


def runs_among(run_ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    return select(runs).where(among(runs.c.id, run_ids, dialect))


def tags_among(run_ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    """(run id, tag) of these runs, by tag (``= ANY(array)`` on PostgreSQL)."""
    return (select(run_tags.c.run_id, run_tags.c.tag)
            .where(among(run_tags.c.run_id, run_ids, dialect)).order_by(run_tags.c.tag))


def ids_with_prefix(hex_prefix: str, owner: str | None, limit: int) -> Select[Any]:
    """Run ids starting with ``hex_prefix`` (lower-case hex, no dashes): an id range."""
    low = uuid.UUID(hex_prefix.ljust(32, "0"))
    high = uuid.UUID(hex_prefix.ljust(32, "f"))
    query = select(runs.c.id).where(runs.c.id >= low, runs.c.id <= high)
    if owner is not None:
        query = query.where(runs.c.owner == owner)
    return query.order_by(runs.c.id).limit(limit)


def running_runs(host_prefix: str) -> Select[Any]:
    """Runs marked running whose executor was a process on this host."""
    return select(runs).where(runs.c.status == "running",
                              runs.c.executor.startswith(host_prefix, autoescape=True))


# -- families ------------------------------------------------------------------------
def family_of(run_ids: list[uuid.UUID], dialect: str) -> Select[Any]:
    """(id, parent, status) of every descendant of these runs (a recursive query)."""
    columns = (runs.c.id, runs.c.parent_id, runs.c.status)
    tree = select(*columns).where(among(runs.c.parent_id, run_ids, dialect)).cte(
        "family", recursive=True)
    tree = tree.union_all(select(*columns).where(runs.c.parent_id == tree.c.id))
    return select(tree)


# -- several runs' records -----------------------------------------------------------
def steps_of(run_ids: Sequence[uuid.UUID]) -> Select[Any]:
    return (select(steps).where(steps.c.run_id.in_(list(run_ids)))
            .order_by(steps.c.run_id, steps.c.position))


def usage_of(run_ids: Sequence[uuid.UUID]) -> Select[Any]:
    """The usage records of these runs, in recording order (the UsageRow columns)."""
    return (select(*USAGE_COLUMNS)
            .where(usage.c.run_id.in_(list(run_ids))).order_by(usage.c.id))


def live_step_counts(run_ids: Sequence[uuid.UUID]) -> Select[Any]:
    """(run id, status, count) of these runs' steps."""
    return (select(steps.c.run_id, steps.c.status, func.count())
            .where(steps.c.run_id.in_(list(run_ids)))
            .group_by(steps.c.run_id, steps.c.status))


# -- figures -------------------------------------------------------------------------
def usage_groups(flt: RunFilter, since: int | None, until: int | None,
                 group_by: str) -> Select[Any]:
    """(key, calls, input, output, cached, reasoning, cost, unpriced) per group of usage
    records of the matching runs (``group_by``: workflow, owner or model)."""
    key = {"workflow": runs.c.workflow, "owner": runs.c.owner,
           "model": usage.c.model}[group_by]
    unpriced = func.sum(case((usage.c.cost_usd.is_(None), 1), else_=0))
    query = select(key, func.count(), func.sum(usage.c.input_tokens),
                   func.sum(usage.c.output_tokens), func.sum(usage.c.cached_input_tokens),
                   func.sum(usage.c.reasoning_tokens), func.sum(usage.c.cost_usd),
                   unpriced).select_from(usage.join(runs, runs.c.id == usage.c.run_id))
    query = filtered(query, flt)
    if since is not None:
        query = query.where(usage.c.recorded_at >= since)
    if until is not None:
        query = query.where(usage.c.recorded_at < until)
    return query.group_by(key).order_by(key)


def timing_rows(flt: RunFilter) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """For statistics: (workflow, status, started, completed) of the matching runs,
    (workflow, step name, status, started, completed, attempts) of their steps, and
    (workflow, step name, failed attempts) from their attempt history."""
    run_query = filtered(
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
    return run_query, step_query, failures
