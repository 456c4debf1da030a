"""Prometheus metrics over real HTTP: ``GET /metrics`` of a real ``flowledger serve``
process and ``flowledger worker --metrics-port``, parsed with prometheus_client's own
parser, equal what the records say after a mixed workload executed by two worker
processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import flowledger as fl
from flowledger.metrics import QUEUE_WAIT_BUCKETS, RUN_BUCKETS, STEP_BUCKETS
from tests.helpers import metrics_app as app
from tests.helpers.procs import ROOT
from tests.helpers.server import free_port, serving
from tests.helpers.webhook_receiver import Receiver
from tests.helpers.workers import WorkerProcess, wait_registered, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(url, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def series(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples of ``name`` keyed by the values of ``labels`` (others must not vary)."""
    found: dict[tuple[str, ...], float] = {}
    for (sample, pairs), value in samples.items():
        if sample == name:
            given = dict(pairs)
            key = tuple(given[label] for label in labels)
            assert key not in found, f"{name}{key} twice"
            found[key] = value
    return found


def micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def expected_buckets(durations: list[timedelta], bounds: tuple[float, ...]
                     ) -> dict[str, int]:
    found = {repr(float(b)): sum(micros(d) <= round(b * 1_000_000) for d in durations)
             for b in bounds}
    found["+Inf"] = len(durations)
    return found


def check_histogram(samples: Samples, name: str, labels: dict[str, str],
                    durations: list[timedelta], bounds: tuple[float, ...]) -> None:
    got = {dict(pairs)["le"]: value for (sample, pairs), value in samples.items()
           if sample == f"{name}_bucket"
           and {k: v for k, v in pairs if k != "le"} == labels}
    assert got == expected_buckets(durations, bounds), (name, labels)
    key = frozenset(labels.items())
    assert samples[(f"{name}_count", key)] == len(durations)
    assert samples[(f"{name}_sum", key)] == pytest.approx(
        sum(micros(d) for d in durations) / 1_000_000, abs=1e-6)


def submit_workload(ledger: fl.Ledger, markers: Path) -> list[fl.RunHandle]:
    """Eight mixed runs (even ones retry their first step, two fail at their last step,
    all record LLM calls) for acme, two plain runs for bob, and two of acme's that no
    worker will run: one in a queue nobody serves, one delayed an hour."""
    acme, bob = ledger.for_owner("acme"), ledger.for_owner("bob")
    handles = [acme.submit(app.mixed, n, str(markers), fail=n in (3, 5)) for n in range(8)]
    handles += [bob.submit(app.plain, n) for n in range(2)]
    acme.submit(app.plain, 99, queue="parked")
    acme.submit(app.plain, 100, delay=timedelta(hours=1))
    return handles


def test_metrics_equal_the_records_after_two_workers(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", "1")  # the receiver is local
    markers = tmp_path / "markers"
    markers.mkdir()
    metrics_port = free_port()
    with fl.Ledger(db_url) as ledger, Receiver().running() as receiver:
        admin = ledger.create_token("ops", admin=True).secret
        bob_token = ledger.create_token("bob").secret
        hook = ledger.for_owner("acme").add_webhook(receiver.url,
                                                    ["run.completed", "run.failed"])
        options = ("--app", "tests.helpers.metrics_app", "--concurrency", "2")
        started = [WorkerProcess(db_url, *options, "--metrics-port", str(metrics_port),
                                 name="w0"),
                   WorkerProcess(db_url, *options, name="w1")]
        try:
            wait_registered(db_url, started)
            handles = submit_workload(ledger, markers)
            wait_until(lambda: all(ledger.get(h.id).status.finished for h in handles),
                       what="the workload to finish")
            acme = ledger.for_owner("acme")
            wait_until(lambda: all(d.status == "delivered"
                                   for d in acme.webhook_deliveries(hook.id))
                       and len(acme.webhook_deliveries(hook.id)) == 8,
                       what="the webhook deliveries")
            executors = {ledger.get(h.id).executor for h in handles}
            with serving(db_url) as server:
                root = server.base.removesuffix("/api/v1")
                samples = scrape(f"{root}/metrics", admin)
                worker_samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
                bob_samples = scrape(f"{root}/metrics", bob_token)
                refused = httpx.get(f"{root}/metrics", timeout=30)
                wrong = httpx.get(f"{root}/metrics", timeout=30,
                                  headers={"Authorization": "Bearer nope"})
            live = ledger.workers()
            queues = {q.name: q for q in ledger.queues()}
            runs = [ledger.get(r.id) for r in ledger.runs(limit=1000)]
            deliveries = acme.webhook_deliveries(hook.id)
        finally:
            for worker in started:
                worker.stop()
    assert len(executors) == 2, "both worker processes executed runs"

    # Runs: finished ones counted by workflow and final status; the two parked ones active.
    finals = Counter((r.workflow, r.status.value) for r in runs if r.status.finished)
    assert series(samples, "flowledger_runs_total", "workflow", "status") == finals
    assert finals[("metrics_mixed", "failed")] == 2
    assert finals[("metrics_mixed", "completed")] == 6
    active = Counter((r.workflow, r.status.value) for r in runs if not r.status.finished)
    assert series(samples, "flowledger_runs_active", "workflow", "status") == active == {
        ("metrics_plain", "pending"): 2}
    for workflow, status in finals:
        check_histogram(samples, "flowledger_run_duration_seconds",
                        {"workflow": workflow, "status": status},
                        [r.duration for r in runs if (r.workflow, r.status.value)
                         == (workflow, status) and r.duration is not None], RUN_BUCKETS)

    # Steps: counts, retries (attempts after the first), durations of the last attempt.
    steps = [(r.workflow, s) for r in runs for s in r.steps]
    step_counts = Counter((w, s.name, s.status.value) for w, s in steps)
    assert series(samples, "flowledger_steps_total", "workflow", "step", "status") == \
        step_counts
    assert step_counts[("metrics_mixed", "publish", "failed")] == 2
    retries = Counter[tuple[str, str]]()
    for w, s in steps:
        retries[(w, s.name)] += s.attempts - 1
    assert series(samples, "flowledger_step_retries_total", "workflow", "step") == retries
    assert retries[("metrics_mixed", "fetch")] == 4  # n = 0, 2, 4, 6 failed once
    for workflow, name, status in step_counts:
        check_histogram(samples, "flowledger_step_duration_seconds",
                        {"workflow": workflow, "step": name, "status": status},
                        [s.duration for w, s in steps if (w, s.name, s.status.value)
                         == (workflow, name, status) and s.duration is not None],
                        STEP_BUCKETS)

    # Queues: what no worker ran is still counted where it waits.
    depth = series(samples, "flowledger_queue_depth", "queue", "state")
    assert depth == {("parked", "ready"): queues["parked"].ready,
                     ("default", "delayed"): queues["default"].delayed} == {
        ("parked", "ready"): 1, ("default", "delayed"): 1}
    started_runs = [r for r in runs if r.started_at is not None]
    check_histogram(samples, "flowledger_queue_wait_seconds", {"queue": "default"},
                    [r.started_at - r.created_at for r in started_runs  # type: ignore[operator]
                     ], QUEUE_WAIT_BUCKETS)

    # Workers and their slots (two each), from their rows.
    assert series(samples, "flowledger_workers", "state") == {
        ("running",): len(live), ("stopping",): 0, ("lost",): 0}
    assert len(live) == 2
    slots = series(samples, "flowledger_worker_slots", "state")
    assert slots[("busy",)] + slots[("free",)] == sum(w.concurrency for w in live) == 4
    assert slots[("busy",)] == sum(w.runs_held for w in live) == 0

    # LLM usage: tokens by model and type, cost by workflow and model.
    usage = [(r.workflow, u) for r in runs for s in r.steps for u in s.usage]
    tokens = Counter[tuple[str, str]]()
    cost: defaultdict[tuple[str, str], float] = defaultdict(float)
    calls = Counter[tuple[str, str]]()
    for workflow, u in usage:
        for kind in ("input", "output", "cached_input", "reasoning"):
            tokens[(u.model, kind)] += getattr(u, f"{kind}_tokens")
        cost[(workflow, u.model)] += u.cost_usd or 0.0
        calls[(workflow, u.model)] += 1
    assert series(samples, "flowledger_llm_tokens_total", "model", "type") == tokens
    assert tokens[("gpt-4o-mini", "input")] == sum(100 + n for n in range(8))
    assert series(samples, "flowledger_llm_calls_total", "workflow", "model") == calls
    got_cost = series(samples, "flowledger_llm_cost_usd_total", "workflow", "model")
    assert got_cost.keys() == cost.keys()
    assert all(got_cost[k] == pytest.approx(cost[k], rel=1e-9) for k in cost)
    assert cost[("metrics_mixed", "gpt-4o-mini")] > 0  # a model the pricing library knows

    # Webhook deliveries, by event and status.
    assert series(samples, "flowledger_webhook_deliveries_total", "event", "status") == \
        Counter((d.event, d.status) for d in deliveries) == {
            ("run.completed", "delivered"): 6, ("run.failed", "delivered"): 2}

    # The worker's port shows the same figures (the database's, not the process's).
    for name in ("flowledger_runs_total", "flowledger_steps_total",
                 "flowledger_llm_tokens_total", "flowledger_step_retries_total",
                 "flowledger_queue_depth"):
        assert {k: v for k, v in worker_samples.items() if k[0] == name} == \
            {k: v for k, v in samples.items() if k[0] == name}, name

    # An owner's token sees its own runs only; no token, or a bad one, is refused.
    assert series(bob_samples, "flowledger_runs_total", "workflow", "status") == {
        ("metrics_plain", "completed"): 2}
    assert series(bob_samples, "flowledger_llm_tokens_total", "model", "type") == {}
    assert series(bob_samples, "flowledger_webhook_deliveries_total", "event", "status") == {}
    for answer in (refused, wrong):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"] == "unauthorized"
        assert set(answer.json()) == {"error", "message"}


def _worker(db_url: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowledger", "--db", db_url, "worker",
                           *options], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_worker_metrics_port_out_of_range_or_taken_is_a_clear_error(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    for port in ("0", "70000"):
        done = _worker(db_url, "--metrics-port", port)
        assert done.returncode == 2, done.stderr
        assert f"--metrics-port must be between 1 and 65535, not {port}" in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _worker(db_url, "--metrics-port", str(port))
    assert done.returncode == 2, done.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "in use" in done.stderr
