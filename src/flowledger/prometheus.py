"""Prometheus metrics: a prometheus_client collector over ``Ledger.metrics()``.

Every figure is derived from the database when scraped (``metrics.py``), never counted
in a process: any process (a server, a worker, one of several) shows the same exact
figures. A snapshot is kept ``max_age`` seconds, so a burst of scrapes (several
Prometheus replicas, several server processes behind one port) costs one query set, and
a stale one is answered while the next is read in the background.

Example::

    from prometheus_client import CollectorRegistry, generate_latest
    from flowledger.prometheus import MetricsCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(fl.Ledger("postgresql://db/app")))
    print(generate_latest(registry).decode())
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .errors import ConfigurationError
from .metrics import FINISHED, DurationHistogram, MetricsSnapshot

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from .ledger import Ledger

log = logging.getLogger("flowledger.metrics")
DEFAULT_MAX_AGE = 5.0
# A snapshot that took q seconds to read is kept at least QUERY_SHARE * q seconds: one
# process spends at most a tenth of its database's time on metrics, however large the
# store (a million runs on SQLite take most of a minute to aggregate).
QUERY_SHARE = 10.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsCollector(Collector):
    """The ``flowledger_*`` metric families of ``ledger`` (its owner's runs when it has
    one). The first scrape reads the database; later ones answer at once with the last
    snapshot and, when it is older than ``max_age`` seconds (and than ten times what its
    read took), start one read in the background for the next scrape (a large store can
    take longer to aggregate than Prometheus waits for an answer). A burst of scrapes
    costs one query set.

    Example: ``registry.register(MetricsCollector(ledger, max_age=10))``
    """

    def __init__(self, ledger: Ledger, *, max_age: float = DEFAULT_MAX_AGE) -> None:
        if not 0 <= max_age <= 3600:
            raise ConfigurationError("max_age must be between 0 and 3600 seconds")
        self.ledger = ledger
        self.max_age = max_age
        self._lock = threading.Lock()
        self._taken: tuple[float, MetricsSnapshot, float] | None = None
        self._refreshing = False

    def _read(self) -> tuple[float, MetricsSnapshot, float]:
        started = time.monotonic()
        found = self.ledger.metrics()
        ended = time.monotonic()
        return ended, found, ended - started

    def _refresh(self) -> None:
        try:
            taken = self._read()
        except Exception:  # the next scrape tries again; the last snapshot stands
            log.warning("reading metrics failed", exc_info=True)
            taken = None
        with self._lock:
            if taken is not None:
                self._taken = taken
            self._refreshing = False

    def snapshot(self) -> tuple[MetricsSnapshot, float]:
        """The current snapshot and the seconds its queries took (the first call, and
        every call with ``max_age=0``, read the database; others may start a read in the
        background and answer with the last snapshot)."""
        with self._lock:
            taken = self._taken
            stale = taken is None or time.monotonic() - taken[0] > (
                max(self.max_age, QUERY_SHARE * taken[2]) if self.max_age > 0 else 0)
            if taken is not None and (not stale or self._refreshing):
                return taken[1], taken[2]
            if taken is not None and self.max_age > 0:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="flowledger-metrics",
                                 daemon=True).start()
                return taken[1], taken[2]
            self._taken = taken = self._read()  # the first read: scrapes wait for it
            return taken[1], taken[2]

    def describe(self) -> list[Metric]:
        return []  # registering must not query the database

    def collect(self) -> Iterator[Metric]:
        found, took = self.snapshot()
        yield from families(found)
        query = GaugeMetricFamily(
            "flowledger_metrics_query_seconds",
            "Seconds the database took to derive these metrics (last read).")
        query.add_metric([], took)
        yield query


def _histogram(name: str, doc: str, labels: list[str],
               series: Mapping[Any, DurationHistogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, hist in sorted(series.items()):
        buckets = [(repr(float(bound)), float(count))
                   for bound, count in zip(hist.bounds, hist.counts, strict=True)]
        buckets.append(("+Inf", float(hist.count)))
        family.add_metric(list(key), buckets, hist.sum)
    return family


def _counter(name: str, doc: str, labels: list[str],
             series: Mapping[Any, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(series.items()):
        family.add_metric(list(key), value)
    return family


def _gauge(name: str, doc: str, labels: list[str],
           series: Mapping[Any, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(series.items()):
        family.add_metric(list(key), value)
    return family


def families(found: MetricsSnapshot) -> list[Metric]:
    """A snapshot as Prometheus metric families (the names are a public contract)."""
    finished = {key: n for key, n in found.runs.items() if key[1] in FINISHED}
    active = {key: n for key, n in found.runs.items() if key[1] not in FINISHED}
    steps = {key: n for key, n in found.steps.items() if key[2] != "running"}
    running_steps = {key[:2]: n for key, n in found.steps.items() if key[2] == "running"}
    delivered = {key: n for key, n in found.webhook_deliveries.items()
                 if key[1] in ("delivered", "failed")}
    outbox = {key: n for key, n in found.webhook_deliveries.items()
              if key[1] not in ("delivered", "failed")}
    return [
        _counter("flowledger_runs", "Finished runs, by workflow and final status.",
                 ["workflow", "status"], finished),
        _gauge("flowledger_runs_active", "Unfinished runs, by workflow and status "
               "(pending, running, waiting, paused).", ["workflow", "status"], active),
        _histogram("flowledger_run_duration_seconds",
                   "Start-to-end duration of finished runs.", ["workflow", "status"],
                   found.run_durations),
        _counter("flowledger_steps", "Finished steps, by workflow, step name and status "
                 "(completed, failed, skipped).", ["workflow", "step", "status"], steps),
        _gauge("flowledger_steps_running", "Steps executing now.", ["workflow", "step"],
               running_steps),
        _histogram("flowledger_step_duration_seconds",
                   "Duration of the last attempt of completed and failed steps.",
                   ["workflow", "step", "status"], found.step_durations),
        _counter("flowledger_step_retries", "Step attempts after the first (retries "
                 "after a failure, and re-runs after an interruption).",
                 ["workflow", "step"], found.step_retries),
        _gauge("flowledger_queue_depth", "Queued runs not finished, by queue and state "
               "(ready, delayed, running, waiting, paused).", ["queue", "state"],
               found.queue_depth),
        _histogram("flowledger_queue_wait_seconds", "Wait of queued runs from "
                   "submission (a delayed run: from when it was due) to their start.",
                   ["queue"], {(queue,): h for queue, h in found.queue_waits.items()}),
        _gauge("flowledger_workers", "Worker processes, by state (running, stopping, "
               "lost).", ["state"], {(state,): n for state, n in found.workers.items()}),
        _gauge("flowledger_worker_slots", "Run slots of live workers: busy or free.",
               ["state"], {(state,): n for state, n in found.worker_slots.items()}),
        _counter("flowledger_llm_calls", "Recorded LLM calls.", ["workflow", "model"],
                 found.llm_calls),
        _counter("flowledger_llm_tokens", "LLM tokens, by model and type (input, output, "
                 "cached_input, reasoning).", ["model", "type"], found.llm_tokens),
        _counter("flowledger_llm_cost_usd", "LLM cost in US dollars (calls the pricing "
                 "library knows).", ["workflow", "model"], found.llm_cost_usd),
        _counter("flowledger_webhook_deliveries", "Webhook deliveries that ended, by event "
                 "and status (delivered, failed).", ["event", "status"], delivered),
        _gauge("flowledger_webhook_outbox", "Webhook deliveries still to send, by event "
               "and status (pending, delivering).", ["event", "status"], outbox),
    ]


def registry_for(ledger: Ledger, *, max_age: float = DEFAULT_MAX_AGE) -> CollectorRegistry:
    """A registry holding only ``ledger``'s collector (not the process's default one).

    Example: ``generate_latest(registry_for(ledger))``
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(ledger, max_age=max_age))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format (``CONTENT_TYPE``)."""
    return generate_latest(registry)


def serve_metrics(ledger: Ledger, port: int, host: str = "127.0.0.1", *,
                  max_age: float = DEFAULT_MAX_AGE) -> WSGIServer:
    """Serve ``ledger``'s metrics over HTTP on ``host:port`` from a daemon thread (what
    ``flowledger worker --metrics-port`` runs); ``shutdown()`` the answer to stop.
    ConfigurationError when the port is out of range or taken.

    Example: ``server = serve_metrics(ledger, 9464)``
    """
    from prometheus_client import start_http_server  # noqa: PLC0415 (start-up time)

    if not 0 < port < 65536:
        raise ConfigurationError(f"the metrics port must be between 1 and 65535, not {port}")
    try:
        server, _thread = start_http_server(port, host, registry_for(ledger, max_age=max_age))
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {host}:{port}: "
                                 f"{exc.strerror or exc} (choose another port with "
                                 "--metrics-port)") from None
    return server
