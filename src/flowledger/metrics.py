"""Metrics derived from the records: ``Ledger.metrics()`` reads every figure Prometheus
shows (runs, steps, retries, durations, queues, workers, LLM usage, webhook deliveries)
from the database in one snapshot. ``prometheus.py`` turns a snapshot into metric
families; the HTTP server and ``flowledger worker --metrics-port`` serve them.

Derived, not counted in process: the figures are the same whichever process answers,
however many workers ran the runs, across restarts, and they equal the records by
construction. ``Ledger`` inherits ``metrics()``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import ids
from .ledgerbase import LedgerBase
from .models import usd
from .queueing import worker_alive
from .store import Bounds, MetricRows

# Bucket upper bounds, in seconds (Prometheus adds +Inf).
RUN_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
               3600.0, 7200.0, 21600.0, 86400.0)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0, 900.0, 3600.0)
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                      3600.0, 21600.0, 86400.0)
FINISHED = ("completed", "failed", "cancelled")
TOKEN_TYPES = ("input", "output", "cached_input", "reasoning")


def _micros(bounds: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(round(bound * 1_000_000) for bound in bounds)


_BOUNDS = Bounds(_micros(RUN_BUCKETS), _micros(STEP_BUCKETS), _micros(QUEUE_WAIT_BUCKETS))


@dataclass(frozen=True)
class DurationHistogram:
    """Durations counted into buckets: ``counts[i]`` durations were at most
    ``bounds[i]`` seconds (cumulative, as Prometheus reads them); ``count`` and ``sum``
    (seconds) cover every duration.

    Example: ``h = ledger.metrics().run_durations[("triage", "completed")]; h.count``
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float

    @classmethod
    def from_buckets(cls, bounds: tuple[float, ...], per_bucket: Sequence[int],
                     total_us: int) -> DurationHistogram:
        """From counts per bucket (index ``len(bounds)``: over the last bound) and the
        sum of the durations in microseconds, as the store groups them."""
        cumulative = list(itertools.accumulate(per_bucket))
        return cls(bounds, tuple(cumulative[:len(bounds)]), cumulative[-1],
                   total_us / 1_000_000)


class _Histograms:
    """Counts per bucket and sums of durations, per label set, as rows arrive."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.found: dict[Any, tuple[list[int], list[int]]] = {}

    def add(self, key: Any, bucket: Any, count: Any, total_us: Any) -> None:
        if bucket is None:
            return
        per_bucket, total = self.found.setdefault(key, ([0] * (len(self.bounds) + 1), [0]))
        per_bucket[int(bucket)] += int(count)
        total[0] += int(total_us or 0)

    def result(self) -> dict[Any, DurationHistogram]:
        return {key: DurationHistogram.from_buckets(self.bounds, per_bucket, total[0])
                for key, (per_bucket, total) in self.found.items()}


@dataclass(frozen=True)
class MetricsSnapshot:
    """Every figure ``/metrics`` shows, read from the records at ``taken_at`` (one
    database snapshot), for ``owner``'s runs (None: every owner's). Workers are shared by
    every owner and always counted whole.

    - ``runs``: (workflow, status) → runs; ``run_durations``: (workflow, final status) →
      start-to-end durations of finished runs.
    - ``steps``: (workflow, step, status) → steps; ``step_durations``: the same key for
      completed and failed steps (their last attempt); ``step_retries``: (workflow,
      step) → attempts after the first.
    - ``queue_depth``: (queue, state) → runs, state ``ready``, ``delayed``, ``running``,
      ``waiting`` or ``paused``; ``queue_waits``: queue → submission (or due time) to
      start of queued runs that started.
    - ``workers``: state (``running``, ``stopping``, ``lost``) → worker processes;
      ``worker_slots``: ``busy`` / ``free`` → run slots of live workers.
    - ``llm_calls`` and ``llm_cost_usd``: (workflow, model) → calls and USD;
      ``llm_tokens``: (model, type) → tokens, type ``input``, ``output``,
      ``cached_input`` or ``reasoning``.
    - ``webhook_deliveries``: (event, status) → deliveries in the outbox.

    Example: ``ledger.metrics().runs[("triage", "failed")]``
    """

    taken_at: datetime
    owner: str | None
    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    run_durations: dict[tuple[str, str], DurationHistogram] = field(default_factory=dict)
    steps: dict[tuple[str, str, str], int] = field(default_factory=dict)
    step_durations: dict[tuple[str, str, str], DurationHistogram] = field(
        default_factory=dict)
    step_retries: dict[tuple[str, str], int] = field(default_factory=dict)
    queue_depth: dict[tuple[str, str], int] = field(default_factory=dict)
    queue_waits: dict[str, DurationHistogram] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)
    worker_slots: dict[str, int] = field(default_factory=dict)
    llm_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    llm_tokens: dict[tuple[str, str], int] = field(default_factory=dict)
    llm_cost_usd: dict[tuple[str, str], float] = field(default_factory=dict)
    webhook_deliveries: dict[tuple[str, str], int] = field(default_factory=dict)


def _add(target: dict[tuple[str, str], int], key: tuple[str, str], value: int) -> None:
    target[key] = target.get(key, 0) + value


def snapshot_of(rows: MetricRows, owner: str | None, now: int) -> MetricsSnapshot:
    """The snapshot the store's rows describe (``now``: when they were read, µs)."""
    found = MetricsSnapshot(datetime.fromtimestamp(now / 1_000_000, UTC), owner)
    run_durations = _Histograms(RUN_BUCKETS)
    for workflow, status, bucket, count, total in rows.runs:
        _add(found.runs, (workflow, status), int(count))
        run_durations.add((workflow, status), bucket, count, total)
    found.run_durations.update(run_durations.result())
    step_durations = _Histograms(STEP_BUCKETS)
    for workflow, name, status, bucket, count, retries, total in rows.steps:
        key = (workflow, name, status)
        found.steps[key] = found.steps.get(key, 0) + int(count)
        _add(found.step_retries, (workflow, name), int(retries or 0))
        step_durations.add(key, bucket, count, total)
    found.step_durations.update(step_durations.result())
    waits = _Histograms(QUEUE_WAIT_BUCKETS)
    for queue, bucket, count, total in rows.queue_waits:
        waits.add(queue, bucket, count, total)
    found.queue_waits.update(waits.result())
    for queue, status, delayed, count in rows.queue_depths:
        if queue is None:
            continue  # runs started in a process, not queued
        state = ("delayed" if delayed else "ready") if status == "pending" else status
        _add(found.queue_depth, (queue, state), int(count))
    for workflow, model, calls, inp, out, cached, reasoning, cost, _hits in rows.llm_usage:
        found.llm_calls[(workflow, model)] = int(calls)
        found.llm_cost_usd[(workflow, model)] = usd(float(cost)) or 0.0
        for kind, tokens in zip(TOKEN_TYPES, (inp, out, cached, reasoning), strict=True):
            _add(found.llm_tokens, (model, kind), int(tokens))
    for event, status, count in rows.webhooks:
        found.webhook_deliveries[(event, status)] = int(count)
    held: dict[str, int] = {str(worker): int(count) for worker, count in rows.held}
    found.workers.update({"running": 0, "stopping": 0, "lost": 0})
    found.worker_slots.update({"busy": 0, "free": 0})
    for worker_id, state, concurrency, heartbeat_at, lease_us in rows.workers:
        if not worker_alive(worker_id, heartbeat_at, lease_us, now):
            found.workers["lost"] += 1
            continue
        found.workers[state] = found.workers.get(state, 0) + 1
        busy = min(held.get(worker_id, 0), int(concurrency))
        found.worker_slots["busy"] += busy
        found.worker_slots["free"] += int(concurrency) - busy
    return found


class LedgerMetrics(LedgerBase):
    """``metrics()``, a part of ``Ledger``."""

    def metrics(self) -> MetricsSnapshot:
        """Every figure Prometheus metrics show, derived from the records in one database
        snapshot: runs, steps and retries, durations as histograms, queue depths and
        waits, workers and their slots, LLM tokens and cost, webhook deliveries. Scoped
        to the Ledger's owner when it has one (workers are shared, counted whole).
        Exact whatever the number of worker processes: nothing is counted in memory.

        Example: ``ledger.metrics().steps[("triage", "fetch", "failed")]``
        """
        now = ids.now_us()
        return snapshot_of(self.store.metric_rows(_BOUNDS, self.owner, now), self.owner, now)
