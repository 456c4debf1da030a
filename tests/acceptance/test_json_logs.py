"""`--log-format json` on real worker and server processes: every line is one JSON object,
and lines logged inside a step carry its run id, position and attempt; what the step
logged is also recorded under its attempts."""

from __future__ import annotations

import json
import uuid
from typing import Any

import flowledger as fl
from flowledger import traceids
from tests.helpers import worker_app
from tests.helpers.server import serving
from tests.helpers.workers import WorkerProcess, wait_until


def _lines(output: str) -> list[dict[str, Any]]:
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line is JSON, or this fails


def test_a_worker_writes_json_lines_with_the_run_step_and_attempt(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.submit(worker_app.talker, "hello")
        worker = WorkerProcess(db_url, "--log-format", "json", "--capture-print")
        try:
            assert handle.result(timeout=60) == "hello"
        finally:
            code, output = worker.stop()
        assert code == 0, output
        lines = _lines(output)
        said = [line for line in lines if line["logger"] == "worker_app"]
        assert [(s["run_id"], s["step"], s["step_name"], s["attempt"], s["message"])
                for s in said] == [
            (handle.id, 1, "talk", 1, "saying hello, attempt 1"),
            (handle.id, 1, "talk", 2, "saying hello, attempt 2")]
        assert all(line["time"].endswith("Z") for line in lines)
        # the ids of the spans the run's trace has (docs/tracing.md), for correlation
        run_uuid = uuid.UUID(handle.id)
        assert {s["trace_id"] for s in said} == {f"{run_uuid.int:032x}"}
        assert [s["span_id"] for s in said] == [
            f"{traceids.attempt_span_id(run_uuid, 1, attempt):016x}" for attempt in (1, 2)]
        done = [line for line in lines if line["message"].endswith("(talker): completed")]
        assert [line["run_id"] for line in done] == [handle.id]
        recorded = [(a.attempt, [(e.logger, e.message) for e in a.records])
                    for a in ledger.logs(handle.id)]
        assert recorded == [
            (1, [("worker_app", "saying hello, attempt 1"), ("print", "printed hello")]),
            (2, [("worker_app", "saying hello, attempt 2"), ("print", "printed hello")])]


def test_a_server_writes_its_own_and_uvicorn_s_lines_as_json(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("alice").secret
    with serving(db_url, "--workers", "1", "--log-format", "json") as server, \
            server.client(token) as api:
        started = api.post("/workflows/flaky/runs", json={"inputs": {"n": 1, "flag": "none"}})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        wait_until(lambda: api.get(f"/runs/{run_id}").json()["status"] == "completed",
                   what="the run to complete")
        output = server.stop()
    lines = _lines(output)
    checked = [line for line in lines if line["logger"] == "http_app"]
    assert [(c["run_id"], c["step"], c["step_name"], c["attempt"]) for c in checked] == [
        (run_id, 2, "check", 1)]
    assert any(line["logger"].startswith("uvicorn") for line in lines)


def test_an_unknown_log_format_is_refused(db_url: str) -> None:
    worker = WorkerProcess(db_url, "--log-format", "xml")
    code, output = worker.stop(signal_first=False)
    assert code == 2 and "--log-format must be one of text, json" in output
