"""The figures Prometheus metrics are derived from (``statements/metrics.py``), read from
one snapshot in one round trip: each set of bucket bounds and each shape (every owner, or
one) compiled once. A part of ``SqlStore``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .core import StoreCore
from .statements import metrics as metrics_sql
from .translate import translate_errors

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class MetricRows:
    """What one scrape reads, as the statements return it (see ``statements/metrics.py``
    for each row's columns)."""

    runs: Rows
    steps: Rows
    queue_waits: Rows
    queue_depths: Rows
    llm_usage: Rows
    webhooks: Rows
    workers: Rows
    held: Rows


@dataclass(frozen=True)
class Bounds:
    """Histogram bucket bounds, in microseconds, of each histogram."""

    runs: tuple[int, ...]
    steps: tuple[int, ...]
    queue_waits: tuple[int, ...]


class StoreMetrics(StoreCore):
    """``metric_rows``: the aggregates behind ``Ledger.metrics()``."""

    @functools.cached_property
    def _metric_sql(self) -> dict[tuple[Bounds, bool], list[tuple[str, dict[str, Any]]]]:
        return {}

    def metric_rows(self, bounds: Bounds, owner: str | None, now: int) -> MetricRows:
        """Every aggregate, for one owner's runs (None: every owner's), from one snapshot.
        Workers are shared by every owner: they are always read whole."""
        scoped = owner is not None
        compiled = self._metric_sql.get((bounds, scoped))
        if compiled is None:
            statements = [
                metrics_sql.run_figures(bounds.runs, scoped),
                metrics_sql.step_figures(bounds.steps, scoped),
                metrics_sql.queue_waits(bounds.queue_waits, scoped),
                metrics_sql.queue_depths(scoped),
                metrics_sql.llm_usage(scoped),
                metrics_sql.webhook_figures(scoped),
                metrics_sql.WORKERS,
                metrics_sql.HELD,
            ]
            # Parameters SQLAlchemy named itself (SQLite's OFFSET 0 after a LIMIT) keep
            # their values; ours (owner, now) are given per read.
            compiled = self._metric_sql[(bounds, scoped)] = [
                (self._compile_statement(statement),
                 dict(statement.compile(dialect=self.backend.engine.dialect).params))
                for statement in statements]
        given: dict[str, Any] = {"now": now, "owner": owner}
        with translate_errors(self._where):
            found = self.backend.read_snapshot(
                [(sql, {name: given.get(name, value) for name, value in defaults.items()})
                 for sql, defaults in compiled])
        return MetricRows(*found)
