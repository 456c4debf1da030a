"""``Ledger.export_traces``: recorded runs sent as OpenTelemetry spans, after the fact.

For runs executed without telemetry, or whose process died with spans still buffered.
The spans are built by the same code as live tracing from the same records, so their ids
are the ones live tracing gave (or would have given): exporting again, or exporting a
run already traced live, sends the same spans again rather than new ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from . import ids
from .errors import ConfigurationError, RunNotFound
from .ledgerbase import LedgerBase
from .store import RunRead
from .telemetry import Telemetry

# The most runs one ``since`` export sends (a bound on one command's work).
MAX_SINCE_RUNS = 100_000


class TracesExported(NamedTuple):
    """What ``export_traces`` sent: how many runs (child runs included) and spans."""

    runs: int
    spans: int


def _since_micros(since: datetime | timedelta) -> int:
    if isinstance(since, timedelta):
        return ids.now_us() - int(since.total_seconds() * 1_000_000)
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise ConfigurationError("since must be timezone-aware (e.g. datetime.now(UTC))")
        return int(since.timestamp() * 1_000_000)
    raise ConfigurationError(f"since must be a datetime or a timedelta, not {since!r}")


class LedgerTraces(LedgerBase):
    """The Ledger's trace export; a part of ``Ledger``."""

    def export_traces(self, run_ids: Iterable[str | uuid.UUID] = (), *,
                      since: datetime | timedelta | None = None,
                      telemetry: Telemetry | None = None) -> TracesExported:
        """Send recorded runs as spans, with their recorded times and ids derived from
        the records: the runs named (ids or unambiguous prefixes) with their child runs,
        and the runs that ended since ``since``. Spans go to ``telemetry``, else this
        Ledger's, else the ``OTEL_*`` environment's. Unfinished runs send their ended
        step attempts, not yet their run span. Raises RunNotFound, ConfigurationError
        (nothing to send to, or the ``otel`` extra missing).

        Example: ``ledger.export_traces(since=timedelta(hours=1))``
        """
        wanted = [self.run_uuid(run_id) for run_id in run_ids]
        if not wanted and since is None:
            raise ConfigurationError("name the runs to export, or give since")
        target = telemetry or self._runtime.telemetry or Telemetry.from_env()
        if target is None:
            raise ConfigurationError(
                "no trace destination: set OTEL_EXPORTER_OTLP_ENDPOINT (or "
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or pass telemetry=fl.Telemetry(...)")
        if since is not None:
            wanted += self.store.ended_since(_since_micros(since), self.owner, MAX_SINCE_RUNS)
        reads = list(self._reads(wanted))
        spans = target.export(reads)
        if not target.flush():
            raise ConfigurationError("the trace exporter did not accept every span in time; "
                                     "is the OTLP endpoint reachable?")
        return TracesExported(len(reads), spans)

    def _reads(self, run_ids: Iterable[uuid.UUID]) -> Iterator[RunRead]:
        """Each run, then its descendants, once each."""
        seen: set[uuid.UUID] = set()
        for run_id in run_ids:
            if run_id in seen:
                continue
            read = self.store.read_run(run_id, self.owner, 1)
            if read is None:
                raise RunNotFound(str(run_id))
            seen.add(run_id)
            yield read
            for descendant in read.descendants:
                if descendant.id in seen or descendant.id == run_id:
                    continue
                found = self.store.read_run(descendant.id, self.owner, 1)
                if found is not None:
                    seen.add(descendant.id)
                    yield found


__all__ = ["MAX_SINCE_RUNS", "LedgerTraces", "TracesExported"]
