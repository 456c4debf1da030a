"""Time series for analytics: runs, durations and LLM usage per time bucket.

A bucket is ``created_at // bucket`` (microseconds), computed by the database, so a
window of a million runs comes back as a few hundred grouped rows; only the durations
of completed runs come back one per run, for percentiles both dialects can compute.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select

from ..rows import RunFilter
from ..schema import runs, usage
from .reads import filtered


def run_counts(flt: RunFilter, bucket_us: int) -> Select[Any]:
    """(bucket, status, runs) of the matching runs, by creation time."""
    bucket = (runs.c.created_at // bucket_us).label("bucket")
    return (filtered(select(bucket, runs.c.status, func.count()), flt)
            .group_by(bucket, runs.c.status))


def run_durations(flt: RunFilter, bucket_us: int) -> Select[Any]:
    """(bucket, duration in microseconds) of the matching runs that completed."""
    bucket = runs.c.created_at // bucket_us
    return filtered(select(bucket, runs.c.completed_at - runs.c.started_at), flt).where(
        runs.c.status == "completed", runs.c.started_at.is_not(None),
        runs.c.completed_at.is_not(None))


def usage_series(flt: RunFilter, since: int | None, until: int | None,
                 bucket_us: int) -> Select[Any]:
    """(bucket, model, workflow, calls, tokens, cost) of the matching runs' LLM calls, by
    the time each call was recorded."""
    bucket = (usage.c.recorded_at // bucket_us).label("bucket")
    query = filtered(
        select(bucket, usage.c.model, runs.c.workflow, func.count(),
               func.sum(usage.c.input_tokens + usage.c.output_tokens),
               func.sum(usage.c.cost_usd))
        .select_from(usage.join(runs, runs.c.id == usage.c.run_id)), flt)
    if since is not None:
        query = query.where(usage.c.recorded_at >= since)
    if until is not None:
        query = query.where(usage.c.recorded_at < until)
    return query.group_by(bucket, usage.c.model, runs.c.workflow)
