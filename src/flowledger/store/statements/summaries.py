"""Run listings for people: one page of run summaries in one statement, no payloads.

A summary is what a dashboard row shows: the run's columns but its inputs and output,
its tags, its step counts (live for unfinished runs, from the steps' primary key), and
the tokens and cost of its own LLM calls. ``marks`` is the light form behind a listing's
ETag: ids, revisions, counts and what the ``stalled`` note depends on.

Values are named parameters, so one compiled statement serves every listing of the same
shape (which filters are set, how many statuses): the store compiles each shape once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
)

from ..rows import RunFilter
from ..schema import run_tags, runs, steps, usage
from .common import constant

#: The runs columns a summary carries, in the order the rows return them.
SUMMARY_COLUMNS = ("id", "workflow", "version", "owner", "status", "error", "created_at",
                   "started_at", "completed_at", "deadline_at", "recovery_attempts",
                   "parent_id", "forked_from", "forked_from_position", "resumed_at",
                   "resumed_from_position", "executor", "queue", "priority", "scheduled_at",
                   "idempotency_key", "lease_expires_at", "revision")
MARK_COLUMNS = ("id", "revision", "status", "lease_expires_at", "executor")
_UNFINISHED = (constant("pending"), constant("running"), constant("paused"),
               constant("waiting"))


@dataclass(frozen=True)
class Shape:
    """Which filters a listing sets: one compiled statement per shape."""

    owner: bool
    statuses: int
    workflow: bool
    tag: bool
    queue: bool
    parent: bool
    roots: bool
    executor: int  # 0: no filter, 1: one process, 2: a prefix (``host:``)
    forked_from: bool
    since: bool
    until: bool
    cursor: bool

    @classmethod
    def of(cls, flt: RunFilter, before_id: uuid.UUID | None) -> Shape:
        return cls(flt.owner is not None, len(flt.status), flt.workflow is not None,
                   flt.tag is not None, flt.queue is not None, flt.parent_id is not None,
                   flt.roots,
                   0 if flt.executor is None else 2 if flt.executor.endswith(":") else 1,
                   flt.forked_from is not None, flt.since is not None, flt.until is not None,
                   before_id is not None)


def params(flt: RunFilter, limit: int, before_id: uuid.UUID | None) -> dict[str, Any]:
    """The values of a listing, named as its statement's parameters."""
    values: dict[str, Any] = {"owner": flt.owner, "workflow": flt.workflow, "tag": flt.tag,
                              "queue": flt.queue, "parent": flt.parent_id, "limit": limit,
                              "before": before_id, "forked_from": flt.forked_from,
                              "executor": flt.executor}
    if flt.executor is not None and flt.executor.endswith(":"):  # a LIKE prefix, escaped
        escaped = (flt.executor.replace("/", "//").replace("%", "/%").replace("_", "/_"))
        values["executor"] = escaped + "%"
    values.update({f"status_{i}": status for i, status in enumerate(flt.status)})
    if flt.since is not None:  # an id range first (ids are time-ordered), then the time
        values |= {"since_id": _id_floor(flt.since - 60_000_000), "since": flt.since}
    if flt.until is not None:
        values |= {"until_id": _id_floor(flt.until + 60_000_000), "until": flt.until}
    return values


def _id_floor(micros: int) -> uuid.UUID:
    """The smallest UUIDv7 whose timestamp is at or after ``micros``."""
    return uuid.UUID(int=max(micros // 1000, 0) << 80)


def _id(name: str) -> Any:
    return bindparam(name, type_=runs.c.id.type)


def _conditions(shape: Shape) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if shape.owner:
        conds.append(runs.c.owner == bindparam("owner"))
    if shape.statuses:
        conds.append(runs.c.status.in_([bindparam(f"status_{i}")
                                        for i in range(shape.statuses)]))
    if shape.workflow:
        conds.append(runs.c.workflow == bindparam("workflow"))
    if shape.queue:
        conds.append(runs.c.queue == bindparam("queue"))
    if shape.parent:
        conds.append(runs.c.parent_id == _id("parent"))
    if shape.roots:
        parent = runs.alias("parent")
        conds.append(or_(runs.c.parent_id.is_(None), ~exists(
            select(parent.c.id).where(parent.c.id == runs.c.parent_id))))
    if shape.executor == 1:
        conds.append(runs.c.executor == bindparam("executor"))
    elif shape.executor == 2:
        conds.append(runs.c.executor.like(bindparam("executor"), escape="/"))
    if shape.forked_from:
        conds.append(runs.c.forked_from == _id("forked_from"))
    if shape.since:
        conds += [runs.c.id >= _id("since_id"), runs.c.created_at >= bindparam("since")]
    if shape.until:
        conds += [runs.c.id < _id("until_id"), runs.c.created_at < bindparam("until")]
    if shape.cursor:
        conds.append(runs.c.id < _id("before"))
    return conds


def _live(total: ColumnElement[Any], status: str | None) -> ColumnElement[Any]:
    """A step count: counted from the steps while the run is unfinished (its own counts
    are written when it ends), else the run's."""
    counted = select(func.count()).select_from(steps).where(steps.c.run_id == runs.c.id)
    if status is not None:
        counted = counted.where(steps.c.status == constant(status))
    return case((runs.c.status.in_(_UNFINISHED), counted.correlate(runs).scalar_subquery()),
                else_=total)


def _counts() -> list[ColumnElement[Any]]:
    return [_live(runs.c.total_steps, None).label("total"),
            _live(runs.c.completed_steps, "completed").label("completed"),
            _live(runs.c.failed_steps, "failed").label("failed"),
            _live(runs.c.skipped_steps, "skipped").label("skipped")]


def _page(columns: list[Any], shape: Shape) -> Select[Any]:
    query = select(*columns)
    if shape.tag:
        query = query.join(run_tags, and_(run_tags.c.run_id == runs.c.id,
                                          run_tags.c.tag == bindparam("tag")))
    return (query.where(*_conditions(shape)).order_by(runs.c.id.desc())
            .limit(bindparam("limit")))


def summaries(shape: Shape, dialect: str) -> Select[Any]:
    """A page of summaries: ``SUMMARY_COLUMNS``, the four step counts, the tags (one
    text, tab-separated), calls, tokens and cost of the run's own LLM calls."""
    # String aggregation by hand: SQLAlchemy's portable form renders its separator as a
    # parameter the raw driver would not be given.
    joined = (func.string_agg(run_tags.c.tag, literal_column("chr(9)"))
              if dialect == "postgresql"
              else func.group_concat(run_tags.c.tag, literal_column("char(9)")))
    # Correlated to the run only: a tag filter joins the run's tags in the page query too.
    tags = (select(joined)
            .where(run_tags.c.run_id == runs.c.id).correlate(runs).scalar_subquery())
    own = usage.c.run_id == runs.c.id
    calls = (select(func.count()).select_from(usage).where(own).correlate(runs)
             .scalar_subquery())
    tokens = (select(func.coalesce(func.sum(usage.c.input_tokens + usage.c.output_tokens),
                                   literal_column("0")))
              .where(own).correlate(runs).scalar_subquery())
    cost = select(func.sum(usage.c.cost_usd)).where(own).correlate(runs).scalar_subquery()
    return _page([*(runs.c[name] for name in SUMMARY_COLUMNS), *_counts(),
                  tags.label("tags"), calls.label("calls"), tokens.label("tokens"),
                  cost.label("cost_usd")], shape)


def marks(shape: Shape) -> Select[Any]:
    """The same page, light: ``MARK_COLUMNS`` and the four step counts."""
    return _page([*(runs.c[name] for name in MARK_COLUMNS), *_counts()], shape)
