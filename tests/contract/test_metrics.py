"""``Ledger.metrics()`` and the Prometheus collector over it, on SQLite and PostgreSQL:
figures equal to the records, owner scoping, the snapshot cache, and the Grafana
dashboard naming only metrics ``/metrics`` serves."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import flowledger as fl
from flowledger.http import create_app
from flowledger.prometheus import MetricsCollector, exposition, registry_for
from tests.helpers.workers import wait_until

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "flowledger-dashboard.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count")}


class Flaky:
    failures = 1


@fl.step(retries=2, backoff=0)
def flaky(n: int) -> int:
    if Flaky.failures:
        Flaky.failures -= 1
        raise ConnectionError("once")
    fl.record_usage("gpt-4o-mini", input_tokens=10 * n, output_tokens=n, provider="openai")
    return n


@fl.step()
def explode(n: int) -> int:
    raise ValueError(f"no {n}")


@fl.workflow(name="metrics_ok")
def ok(n: int) -> int:
    return flaky(n)


@fl.workflow(name="metrics_bad")
def bad(n: int) -> int:
    return explode(n)


def _run_some(ledger: fl.Ledger) -> None:
    Flaky.failures = 1
    ledger.for_owner("alice").run(ok, 3)
    ledger.for_owner("alice").run(ok, 4)
    with pytest.raises(fl.RunFailed):
        ledger.for_owner("bob").run(bad, 1)
    ledger.for_owner("bob").submit(ok, 5, queue="later")


def test_metrics_equal_the_records_and_are_scoped_by_owner(ledger: fl.Ledger) -> None:
    _run_some(ledger)
    every = ledger.metrics()
    assert every.owner is None
    assert every.runs == {("metrics_ok", "completed"): 2, ("metrics_bad", "failed"): 1,
                          ("metrics_ok", "pending"): 1}
    assert every.steps == {("metrics_ok", "flaky", "completed"): 2,
                           ("metrics_bad", "explode", "failed"): 1}
    assert every.step_retries == {("metrics_ok", "flaky"): 1, ("metrics_bad", "explode"): 0}
    assert every.llm_tokens == {("gpt-4o-mini", "input"): 70, ("gpt-4o-mini", "output"): 7,
                                ("gpt-4o-mini", "cached_input"): 0,
                                ("gpt-4o-mini", "reasoning"): 0}
    assert every.llm_calls == {("metrics_ok", "gpt-4o-mini"): 2}
    assert every.queue_depth == {("later", "ready"): 1}
    completed = every.run_durations[("metrics_ok", "completed")]
    runs = [ledger.get(r.id) for r in ledger.runs(workflow="metrics_ok", status="completed")]
    assert completed.count == completed.counts[-1] == 2
    assert completed.sum == pytest.approx(
        sum(r.duration.total_seconds() for r in runs if r.duration), abs=1e-6)
    assert list(completed.counts) == sorted(completed.counts)  # cumulative
    assert ("metrics_ok", "pending") not in every.run_durations

    alice = ledger.for_owner("alice").metrics()
    assert alice.owner == "alice"
    assert alice.runs == {("metrics_ok", "completed"): 2}
    assert alice.queue_depth == {}
    bob = ledger.for_owner("bob").metrics()
    assert bob.runs == {("metrics_bad", "failed"): 1, ("metrics_ok", "pending"): 1}
    assert bob.llm_tokens == {}
    assert bob.workers == every.workers  # shared by every owner


def test_a_snapshot_is_kept_max_age_seconds(ledger: fl.Ledger) -> None:
    _run_some(ledger)
    kept = MetricsCollector(ledger, max_age=3600)
    fresh = MetricsCollector(ledger, max_age=0)
    first, _took = kept.snapshot()
    ledger.for_owner("alice").run(ok, 6)
    assert kept.snapshot()[0] is first  # within max_age: no query
    assert fresh.snapshot()[0].runs[("metrics_ok", "completed")] == 3
    with pytest.raises(fl.ConfigurationError, match="max_age"):
        MetricsCollector(ledger, max_age=-1)


def test_a_stale_snapshot_is_answered_while_the_next_is_read(ledger: fl.Ledger) -> None:
    _run_some(ledger)
    collector = MetricsCollector(ledger, max_age=0.01)
    first, _took = collector.snapshot()  # the first read: waited for
    assert first.runs[("metrics_ok", "completed")] == 2
    ledger.for_owner("alice").run(ok, 6)
    # Past max_age a scrape answers with what it has and starts a read in the
    # background; a later scrape sees the new run.
    wait_until(lambda: collector.snapshot()[0].runs[("metrics_ok", "completed")] == 3,
               timeout=30, what="the background read")


class _SlowLedger:
    """A ledger whose aggregate takes a while, as a large store's does."""

    def __init__(self, ledger: fl.Ledger) -> None:
        self.ledger = ledger
        self.reads = 0
        self.began = threading.Event()

    def metrics(self) -> fl.MetricsSnapshot:
        self.reads += 1
        self.began.set()
        time.sleep(0.3)  # the slow query being modelled, not synchronisation
        return self.ledger.metrics()


def test_a_slow_read_is_repeated_at_most_a_tenth_of_the_time(ledger: fl.Ledger) -> None:
    _run_some(ledger)
    slow = _SlowLedger(ledger)
    collector = MetricsCollector(slow, max_age=0.05)  # type: ignore[arg-type]
    collector.snapshot()
    slow.began.clear()
    time.sleep(0.4)  # now older than max_age and than the read (time passing is the point)
    for _ in range(5):  # stale by max_age, not by ten times the 0.3 s the read took
        collector.snapshot()
    assert not slow.began.wait(1.0) and slow.reads == 1


def test_the_text_format_parses_with_prometheus_clients_parser(ledger: fl.Ledger) -> None:
    _run_some(ledger)
    text = exposition(registry_for(ledger)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    runs = families["flowledger_runs"]
    assert runs.type == "counter"
    assert {(s.labels["workflow"], s.labels["status"]): s.value for s in runs.samples
            if s.name == "flowledger_runs_total"} == {("metrics_ok", "completed"): 2,
                                                      ("metrics_bad", "failed"): 1}
    assert families["flowledger_step_duration_seconds"].type == "histogram"
    assert families["flowledger_queue_depth"].type == "gauge"


def _served_names(ledger: fl.Ledger) -> set[str]:
    """Every sample name a real /metrics answer can carry, by its families' types."""
    admin = ledger.create_token("ops", admin=True).secret
    with TestClient(create_app(ledger)) as client:
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200
    names = set()
    for family in text_string_to_metric_families(answer.text):
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def test_the_grafana_dashboard_names_only_served_metrics(ledger: fl.Ledger) -> None:
    _run_some(ledger)
    served = _served_names(ledger)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 15
    used = {name for expr in exprs for name in re.findall(r"\bflowledger_[a-z_]+", expr)}
    assert used - served == set(), f"the dashboard names metrics /metrics lacks: {used - served}"
    # Every family the issue names is on the dashboard.
    for name in ("flowledger_runs_total", "flowledger_steps_total",
                 "flowledger_step_duration_seconds_bucket",
                 "flowledger_run_duration_seconds_bucket", "flowledger_step_retries_total",
                 "flowledger_queue_depth", "flowledger_queue_wait_seconds_bucket",
                 "flowledger_workers", "flowledger_worker_slots",
                 "flowledger_llm_tokens_total", "flowledger_llm_cost_usd_total",
                 "flowledger_webhook_deliveries_total"):
        assert name in used, name


def test_metrics_over_http_need_a_token(ledger: fl.Ledger) -> None:
    alice = ledger.create_token("alice").secret
    _run_some(ledger)
    with TestClient(create_app(ledger)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json() == {"error": "unauthorized", "message": "missing bearer "
                                  "token: send 'Authorization: Bearer <token>'"}
        assert client.get("/metrics", params={"x": "1"},
                          headers={"Authorization": f"Bearer {alice}"}).status_code == 422
        scoped = client.get("/metrics", headers={"Authorization": f"Bearer {alice}"})
    assert scoped.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'flowledger_runs_total{status="completed",workflow="metrics_ok"} 2.0' in scoped.text
    assert "metrics_bad" not in scoped.text  # bob's
