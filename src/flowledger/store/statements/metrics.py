"""Aggregates for Prometheus metrics: every figure a scrape shows, derived from the
records, a few grouped statements in all.

Histograms are counted by the database: each duration gets the index of its bucket (one
``CASE WHEN d <= bound THEN i ...``, which stops at the first bound that fits), and rows
are grouped by it, so a table of a million runs comes back as a few rows per label set
(the caller accumulates them into Prometheus's cumulative buckets). One CASE per row,
not one per bucket: half the time of ``SUM(CASE ...)`` per bound on SQLite. Bounds are
literals (each set of bounds compiles its own statements, once); the owner and the time
are parameters (``:owner``, ``:now``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    bindparam,
    case,
    func,
    literal_column,
    null,
    select,
)

from ..schema import runs, steps, usage, webhook_deliveries, workers
from .common import constant

FINISHED = tuple(constant(s) for s in ("completed", "failed", "cancelled"))
_ONE: ColumnElement[Any] = literal_column("1")
_ZERO: ColumnElement[Any] = literal_column("0")
_NO_LIMIT: ColumnElement[Any] = literal_column(str(2**62))
# Unfinished statuses a queue counts (a pending run is ready or delayed).
QUEUED = tuple(constant(s) for s in ("pending", "running", "waiting", "paused"))


def bucket_of(duration: ColumnElement[Any], bounds_us: Sequence[int]) -> ColumnElement[Any]:
    """The index of the first bound ``duration`` fits under (``len(bounds_us)``: none,
    the +Inf bucket); NULL when there is no duration."""
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = [
        (duration.is_(None), null())]
    whens += [(duration <= literal_column(str(int(bound))), literal_column(str(index)))
              for index, bound in enumerate(bounds_us)]
    return case(*whens, else_=literal_column(str(len(bounds_us))))


def _scoped(query: Select[Any], owner_column: Any, scoped: bool) -> Select[Any]:
    return query.where(owner_column == bindparam("owner")) if scoped else query


def _fenced(query: Select[Any]) -> Subquery:
    """``query`` as a subquery the planners do not flatten (a LIMIT no table reaches,
    a literal on both dialects): its duration is computed once per row, not once per
    bound it is compared with, and PostgreSQL groups the outer query by hashing instead
    of sorting every row."""
    return query.limit(_NO_LIMIT).subquery()


def run_figures(bounds_us: Sequence[int], scoped: bool) -> Select[Any]:
    """(workflow, status, duration bucket, runs, sum of durations) per workflow, status
    and bucket; durations (start to end, µs) of finished runs only (others: bucket
    NULL)."""
    duration = case((runs.c.status.in_(FINISHED), runs.c.completed_at - runs.c.started_at))
    rows = _fenced(_scoped(select(runs.c.workflow, runs.c.status, duration.label("d")),
                           runs.c.owner, scoped))
    bucket = bucket_of(rows.c.d, bounds_us)
    return (select(rows.c.workflow, rows.c.status, bucket, func.count(),
                   func.coalesce(func.sum(rows.c.d), _ZERO))
            .group_by(rows.c.workflow, rows.c.status, bucket))


def step_figures(bounds_us: Sequence[int], scoped: bool) -> Select[Any]:
    """(workflow, step name, status, duration bucket, steps, retries, sum of durations)
    per workflow, step name, status and bucket. Retries are attempts after the first
    (failed or interrupted ones retried); durations are those of the last attempt of
    completed and failed steps (others: bucket NULL)."""
    duration = case((steps.c.status.in_((constant("completed"), constant("failed"))),
                     steps.c.completed_at - steps.c.started_at))
    joined = (select(runs.c.workflow, steps.c.name, steps.c.status, steps.c.attempts,
                     duration.label("d"))
              .select_from(steps.join(runs, runs.c.id == steps.c.run_id)))
    rows = _fenced(_scoped(joined, runs.c.owner, scoped))
    bucket = bucket_of(rows.c.d, bounds_us)
    return (select(rows.c.workflow, rows.c.name, rows.c.status, bucket, func.count(),
                   func.sum(rows.c.attempts - _ONE), func.coalesce(func.sum(rows.c.d), _ZERO))
            .group_by(rows.c.workflow, rows.c.name, rows.c.status, bucket))


def queue_waits(bounds_us: Sequence[int], scoped: bool) -> Select[Any]:
    """(queue, wait bucket, runs, sum of waits) of queued runs that started: the wait from
    submission (or from when a delayed run became due) to the start, µs."""
    due = case((runs.c.scheduled_at > runs.c.created_at, runs.c.scheduled_at),
               else_=runs.c.created_at)
    started = (select(runs.c.queue, (runs.c.started_at - due).label("d"))
               .where(runs.c.queue.is_not(None), runs.c.started_at.is_not(None)))
    rows = _fenced(_scoped(started, runs.c.owner, scoped))
    bucket = bucket_of(rows.c.d, bounds_us)
    return (select(rows.c.queue, bucket, func.count(), func.coalesce(func.sum(rows.c.d), _ZERO))
            .group_by(rows.c.queue, bucket))


def queue_depths(scoped: bool) -> Select[Any]:
    """(queue, status, delayed 0/1, runs) of unfinished runs (``:now`` decides which
    pending runs are delayed); queue NULL: runs not queued (the caller leaves them out:
    a ``queue IS NOT NULL`` here made SQLite walk every queued run, finished or not,
    instead of the few unfinished ones through the status index)."""
    delayed = case((runs.c.scheduled_at > bindparam("now"), _ONE), else_=_ZERO)
    query = (select(runs.c.queue, runs.c.status, delayed, func.count())
             .where(runs.c.status.in_(QUEUED)))
    return _scoped(query, runs.c.owner, scoped).group_by(runs.c.queue, runs.c.status,
                                                         delayed)


def llm_usage(scoped: bool) -> Select[Any]:
    """(workflow, model, calls, input, output, cached input, reasoning tokens, cost,
    cache hits) per workflow and model."""
    query = (select(runs.c.workflow, usage.c.model, func.count(),
                    func.coalesce(func.sum(usage.c.input_tokens), _ZERO),
                    func.coalesce(func.sum(usage.c.output_tokens), _ZERO),
                    func.coalesce(func.sum(usage.c.cached_input_tokens), _ZERO),
                    func.coalesce(func.sum(usage.c.reasoning_tokens), _ZERO),
                    func.coalesce(func.sum(usage.c.cost_usd), literal_column("0.0")),
                    func.coalesce(func.sum(usage.c.cache_hit), _ZERO))
             .select_from(usage.join(runs, runs.c.id == usage.c.run_id)))
    return _scoped(query, runs.c.owner, scoped).group_by(runs.c.workflow, usage.c.model)


def webhook_figures(scoped: bool) -> Select[Any]:
    """(event, status, deliveries) of the webhook outbox."""
    query = select(webhook_deliveries.c.event, webhook_deliveries.c.status, func.count())
    return _scoped(query, webhook_deliveries.c.owner, scoped).group_by(
        webhook_deliveries.c.event, webhook_deliveries.c.status)


# (id, state, concurrency, heartbeat, lease) of every registered worker.
WORKERS = select(workers.c.id, workers.c.state, workers.c.concurrency,
                 workers.c.heartbeat_at, workers.c.lease_us)
# (worker id, queued runs it holds running).
HELD = (select(runs.c.executor, func.count())
        .where(runs.c.status == constant("running"), runs.c.queue.is_not(None),
               runs.c.executor.is_not(None))
        .group_by(runs.c.executor))
