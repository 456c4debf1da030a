"""The HTTP API against a real ``flowledger serve`` process (with its in-process workers),
on SQLite and PostgreSQL: the full flow, owner isolation, bad input, event streams."""

from __future__ import annotations

import base64
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx

import flowledger as fl
from tests.helpers.server import ServerProcess, serving, sse_events
from tests.helpers.workers import wait_until


def _tokens(db_url: str) -> dict[str, str]:
    with fl.Ledger(db_url) as ledger:
        return {"alice": ledger.create_token("alice").secret,
                "bob": ledger.create_token("bob").secret,
                "admin": ledger.create_token("ops", admin=True).secret}


def _status(client: httpx.Client, run_id: str) -> str:
    answer = client.get(f"/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    status: str = answer.json()["status"]
    return status


def _wait_status(client: httpx.Client, run_id: str, *wanted: str) -> None:
    wait_until(lambda: _status(client, run_id) in wanted, timeout=60,
               what=f"run {run_id} to be {' or '.join(wanted)}")


def _start(client: httpx.Client, workflow: str, **body: Any) -> str:
    answer = client.post(f"/workflows/{workflow}/runs", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    run_id: str = answer.json()["id"]
    return run_id


def _stream(client: httpx.Client, run_id: str, after: str | None = None,
            limit: int | None = None) -> list[dict[str, str]]:
    headers = {"Last-Event-ID": after} if after else {}
    with client.stream("GET", f"/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response, limit)


def test_the_full_flow_over_http(db_url: str, tmp_path: Path) -> None:
    tokens = _tokens(db_url)
    with serving(db_url, "--workers", "2") as server, server.client(tokens["alice"]) as api:
        # start a run and stream its events to the end
        run_id = _start(api, "report", inputs={"n": 5}, tags=["http"])
        events = _stream(api, run_id)
        kinds = [event["event"] for event in events]
        assert kinds == ["run.started", "step.started", "step.completed", "step.started",
                         "step.completed", "run.completed"]
        assert len({event["id"] for event in events}) == len(events)
        assert json.loads(events[1]["data"])["name"] == "fetch"

        # the trace: steps, counts, usage, lineage, artifacts; secrets redacted
        run = api.get(f"/runs/{run_id}").json()
        assert run["status"] == "completed" and run["output"] == "report 5"
        assert run["owner"] == "alice" and run["tags"] == ["http"]
        assert run["counts"] == {"total": 2, "completed": 2, "failed": 0, "skipped": 0}
        assert run["inputs"] == {"n": 5, "api_key": "[redacted]"}
        assert run["steps"][0]["output"] == {"n": 5, "password": "[redacted]"}
        assert run["usage"]["calls"] == 0
        assert run["lineage"]["forked_from"] is None
        assert [a["key"] for a in run["artifacts"]] == ["report.md"]
        step = api.get(f"/runs/{run_id}/steps/2").json()
        assert step["name"] == "write_report" and step["output"] == "report 5"
        assert api.get(f"/runs/{run_id}/steps/3").status_code == 404

        # download the artifact
        artifact = api.get(f"/runs/{run_id}/artifacts/report.md")
        assert artifact.status_code == 200
        assert artifact.text == "# report 5\n"
        assert artifact.headers["content-type"].startswith("text/markdown")
        assert api.get(f"/runs/{run_id}/artifacts/missing.md").status_code == 404

        # listing, filters and reports
        listed = api.get("/runs", params={"status": "completed", "tag": "http"}).json()
        assert [r["id"] for r in listed["runs"]] == [run_id]
        assert "steps" not in listed["runs"][0] and listed["next_cursor"] is None
        assert api.get("/stats").json()["workflows"][0]["workflow"] == "report"
        assert api.get("/usage", params={"since": "2020-01-01"}).status_code == 200

        # resume a failed run: only the failed step runs again
        flag = tmp_path / "fail-now"
        flag.touch()
        failing = _start(api, "flaky", inputs={"n": 7, "flag": str(flag)})
        first = _stream(api, failing)
        assert first[-1]["event"] == "run.failed"
        failure = json.loads(first[-1]["data"])["error"]
        assert failure["type"] == "builtins.RuntimeError" and "failing while" in failure["message"]
        flag.unlink()
        resumed = api.post(f"/runs/{failing}/resume")
        assert resumed.status_code == 202 and resumed.json()["changed"] is True
        rest = _stream(api, failing, after=first[-1]["id"])
        assert [e["event"] for e in rest] == ["run.resumed", "step.started", "step.completed",
                                              "run.completed"]
        done = api.get(f"/runs/{failing}").json()
        assert done["output"] == [7, "checked"]
        assert [s["attempts"] for s in done["steps"]] == [1, 2]
        step = api.get(f"/runs/{failing}/steps/2").json()
        assert [(a["number"], a["outcome"]) for a in step["attempt_history"]] == [
            (1, "failed"), (2, "completed")]
        assert step["attempt_history"][0]["error"]["type"].endswith("Error")
        assert done["steps"][1]["attempt_history"] == step["attempt_history"]
        # what each attempt of the retried step logged, under that attempt
        logs = api.get(f"/runs/{failing}/logs").json()
        assert [(a["position"], a["step"], a["attempt"], [r["message"] for r in a["records"]])
                for a in logs] == [(2, "check", 1, ["checking fail-now"]),
                                   (2, "check", 2, ["checking fail-now"])]
        assert logs[0]["records"][0]["level"] == "WARNING" and not logs[0]["truncated"]
        assert api.get(f"/runs/{failing}/logs", params={"step": 1}).json() == []
        assert api.get(f"/runs/{failing}/logs", params={"step": 0}).status_code == 422
        assert [json.loads(e["data"])["error"]["type"] for e in first
                if e["event"] == "step.failed"] == [
            step["attempt_history"][0]["error"]["type"]]
        again = api.post(f"/runs/{failing}/resume")
        assert again.status_code == 200 and again.json()["changed"] is False

        # cancel a slow run while its step waits
        gate = tmp_path / "gate"
        slow = _start(api, "stepped", inputs={"gates": [str(gate), str(gate)]})
        assert _stream(api, slow, limit=2)[-1]["event"] == "step.started"
        cancelled = api.post(f"/runs/{slow}/cancel")
        assert cancelled.json() == {"id": slow, "status": "cancelled", "changed": True}
        gate.touch()
        assert _stream(api, slow)[-1]["event"] == "run.cancelled"
        assert _status(api, slow) == "cancelled"
        assert api.get(f"/runs/{slow}").json()["counts"]["completed"] <= 1

        # fork the first run from its second step, with an idempotent start beside it
        fork = api.post(f"/runs/{run_id}/fork", json={"from_position": 2})
        assert fork.status_code == 202
        forked = fork.json()["id"]
        _wait_status(api, forked, "completed")
        lineage = api.get(f"/runs/{forked}").json()["lineage"]
        assert lineage["forked_from"] == run_id and lineage["forked_from_position"] == 2
        keyed = [api.post("/workflows/report/runs", json={"inputs": {"n": 1}},
                          headers={"Idempotency-Key": "once"}) for _ in range(2)]
        assert [k.status_code for k in keyed] == [202, 200]
        assert keyed[0].json()["id"] == keyed[1].json()["id"]

        # health needs no token; readiness reaches the database
        anonymous = server.client(None)
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json()["status"] == "ready"
        assert anonymous.get("/runs").status_code == 401
        # the reference page is whole on its own: nothing to load from elsewhere
        page = anonymous.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/api/v1/runs/{run_id}/steps/{position}" in page.text
        assert "<script" not in page.text and "https://" not in page.text
        # workflows list their parameters with types and defaults
        report = next(w for w in api.get("/workflows").json() if w["name"] == "report")
        assert report["parameters"] == [
            {"name": "n", "type": "int", "required": True, "default": None, "variadic": None},
            {"name": "api_key", "type": "str", "required": False, "default": "k-123",
             "variadic": None}]
        painted = next(w for w in api.get("/workflows").json() if w["name"] == "painted")
        assert [(p["name"], p["type"], p["default"], p["variadic"])
                for p in painted["parameters"]] == [
            ("colour", "Colour", "red", None), ("shades", "int", None, "list")]


def _every_run_endpoint(api: httpx.Client, run_id: str) -> list[httpx.Response]:
    return [api.get(f"/runs/{run_id}"), api.get(f"/runs/{run_id}/steps/1"),
            api.get(f"/runs/{run_id}/events"), api.get(f"/runs/{run_id}/logs"),
            api.get(f"/runs/{run_id}/artifacts/report.md"),
            api.post(f"/runs/{run_id}/resume"), api.post(f"/runs/{run_id}/cancel"),
            api.post(f"/runs/{run_id}/fork", json={"from_position": 1})]


def test_owners_see_only_their_own_runs(db_url: str) -> None:
    tokens = _tokens(db_url)
    with serving(db_url, "--workers", "2") as server, \
            server.client(tokens["alice"]) as alice, server.client(tokens["bob"]) as bob, \
            server.client(tokens["admin"]) as admin:
        theirs = _start(alice, "report", inputs={"n": 1})
        _stream(alice, theirs)
        mine = _start(bob, "report", inputs={"n": 2})
        _stream(bob, mine)
        for answer in _every_run_endpoint(bob, theirs):
            assert answer.status_code == 404, (answer.request.url, answer.text)
            assert answer.json()["error"] == "not_found"
        assert [r["id"] for r in bob.get("/runs").json()["runs"]] == [mine]
        assert bob.get("/runs", params={"owner": "alice"}).json()["runs"] == []
        assert bob.get("/stats").json()["workflows"][0]["runs"] == 1
        # the owner's own requests still work, and an admin token sees both owners
        assert [a.status_code for a in _every_run_endpoint(alice, theirs)][:5] == [200] * 5
        seen = {r["owner"] for r in admin.get("/runs").json()["runs"]}
        assert {"alice", "bob"} <= seen
        assert [r["id"] for r in admin.get("/runs", params={"owner": "bob"}).json()["runs"]
                ] == [mine]

        # tokens: missing, malformed, unknown and revoked ones are all 401
        for headers in ({}, {"Authorization": "Bearer nope"},
                        {"Authorization": "Basic YWxpY2U6eA=="},
                        {"Authorization": f"Bearer {tokens['bob']}x"}):
            answer = httpx.get(f"{server.base}/runs/{mine}", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"
        with fl.Ledger(db_url) as ledger:
            bob_id = next(t.id for t in ledger.tokens() if t.owner == "bob")
            assert ledger.revoke_token(bob_id)
            assert next(t for t in ledger.tokens(include_revoked=True)
                        if t.id == bob_id).last_used_at is not None
        assert bob.get("/runs").status_code == 401


def test_bad_input_gets_a_readable_4xx(db_url: str) -> None:
    tokens = _tokens(db_url)
    with serving(db_url, "--max-body", "2kb") as server, \
            server.client(tokens["alice"]) as api:
        too_big = api.post("/workflows/report/runs", json={"inputs": {"n": 1,
                                                                      "api_key": "x" * 4000}})
        assert too_big.status_code == 413 and "2048 bytes" in too_big.json()["message"]
        chunked = api.post("/workflows/report/runs", content=iter([b'{"inputs":', b" " * 4000,
                                                                   b'{"n": 1}}']),
                           headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        forged = base64.urlsafe_b64encode(uuid.uuid4().bytes + b"1234").decode().rstrip("=")
        cases: list[tuple[httpx.Response, int, str]] = [
            (api.post("/workflows/report/runs", content=b'{"inputs": {"n": 1},,}',
                      headers={"content-type": "application/json"}), 422,
             "the request body is not valid JSON: Expecting property name enclosed in double "
             "quotes at character 20"),
            (api.get("/runs", params={"cursor": forged}), 422, "invalid cursor"),
            (api.get("/runs", params={"statuss": "failed"}), 422,
             "unknown query parameter 'statuss'; this route takes cursor, executor, "
             "forked_from, limit, owner, parent, queue, since, status, tag, top_level, until, "
             "workflow"),
            (api.get("/stats", params={"since": "2h", "x": "1"}), 422, "'x'"),
            (api.get("/runs", params={"since": "2x"}), 422,
             "since: not a time: '2x' (use e.g. 2h or 2026-11-01)"),
            (api.get("/runs?since=2h&since=3h"), 422, "'since' takes one value, not 2"),
            (api.get("/runs", params={"tag": "a\x00b"}), 422,
             "the tag filter must be 1-200 printable characters"),
            (api.get("/runs", params={"workflow": "\x00"}), 422, "workflow filter"),
            (api.post("/workflows/report/runs", json={"inputs": {"n": 1}, "tags": ["a\x00"]}),
             422, "a tag must be"),
            (api.post("/workflows/report/runs", json={"inputs": {"n": 1}, "queue": "q\x00"}),
             422, "queue must be"),
            (api.post("/workflows/report/runs", json={"inputs": {"n": 1},
                                                     "idempotency_key": "\x00"}), 422,
             "idempotency_key must be"),
            (api.post("/workflows/report/runs", json={"inputs": []}), 422, "inputs"),
            (api.post("/workflows/report/runs", json={"inputs": {"m": 1}}), 422, "'n'"),
            (api.post("/workflows/report/runs", json={"priority": "high"}), 422, "priority"),
            (api.post("/workflows/report/runs", json={"inputs": {"n": "three"}}), 422,
             "input n='three' does not fit its annotation int"),
            (api.post("/workflows/report/runs", json={"inputs": {"n": 1, "api_key": [1]}}),
             422, "api_key"),
            (api.post("/workflows/nope/runs", json={}), 404, "nope"),
            (api.get("/runs", params={"cursor": "AAAA"}), 422, "cursor"),
            (api.get("/runs", params={"limit": 0}), 422, "limit"),
            (api.get("/runs", params={"since": "yesterday"}), 422, "since"),
            (api.get("/runs", params={"status": "done"}), 422, "status"),
            (api.get("/runs/not-a-run"), 404, "not-a-run"),
            (api.get("/runs/01a1fd2c-449c-725a-973f-0bcfa9b9dbcb"), 404, "01a1fd2c"),
        ]
        for answer, status, mentioned in cases:
            assert answer.status_code == status, (answer.request.url, answer.text)
            assert mentioned.lower() in answer.json()["message"].lower(), answer.text
            assert "postgres" not in answer.text and "sqlite" not in answer.text
        # nothing was recorded by the refused starts
        assert api.get("/runs").json()["runs"] == []
        run_id = _start(api, "report", inputs={"n": 3})
        bad_cursor = api.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "v9.x"})
        assert bad_cursor.status_code == 422
        assert "event id" in bad_cursor.json()["message"]
        missing_step = api.get(f"/runs/{run_id}/steps/999")
        assert missing_step.status_code == 404
        assert missing_step.json()["message"] == f"run {run_id} has no step at position 999"
        # durations are read as the command line reads them
        assert [r["id"] for r in api.get("/runs", params={"since": "2h"}).json()["runs"]] \
            == [run_id]
        assert api.get("/runs", params={"until": "2h"}).json()["runs"] == []
        # a cursor works only with the listing it came from
        more = api.get("/runs", params={"limit": 1, "status": "pending"}).json()
        _start(api, "report", inputs={"n": 5})
        page = api.get("/runs", params={"limit": 1}).json()
        assert page["next_cursor"] is not None and more["next_cursor"] is None
        other = api.get("/runs", params={"cursor": page["next_cursor"], "tag": "x"})
        assert other.status_code == 422 and "same filters" in other.json()["message"]
        assert api.get("/runs", params={"cursor": page["next_cursor"]}).status_code == 200
        # a fork with inputs of the wrong type is refused before anything is recorded
        wrong = api.post(f"/runs/{run_id}/fork", json={"from_position": 1,
                                                      "inputs": {"n": {"not": "int"}}})
        assert wrong.status_code == 422 and "input n" in wrong.json()["message"], wrong.text
        assert len(api.get("/runs").json()["runs"]) == 2
        # inputs from JSON are converted to the annotated types ("4" -> 4)
        converted = _start(api, "report", inputs={"n": "4"})
        assert api.get(f"/runs/{converted}").json()["inputs"]["n"] == 4
        ambiguous = api.get(f"/runs/{run_id[:1]}")  # every run id begins alike
        assert ambiguous.status_code == 422, ambiguous.text
        assert "matches several runs" in ambiguous.json()["message"]


def test_an_event_stream_resumes_on_another_server_without_loss_or_repeats(
        db_url: str, tmp_path: Path) -> None:
    """A client reads part of a run's events from server A, disconnects, and reconnects
    to server B with Last-Event-ID while the run (executed by A's worker) goes on."""
    tokens = _tokens(db_url)
    gates = [tmp_path / f"gate-{n}" for n in range(1, 5)]
    with serving(db_url, "--workers", "1") as first, \
            ServerProcessContext(db_url) as second, \
            first.client(tokens["alice"]) as api_a, second.client(tokens["alice"]) as api_b:
        run_id = _start(api_a, "stepped", inputs={"gates": [str(g) for g in gates]})
        gates[0].touch()
        seen = _stream(api_a, run_id, limit=3)  # run.started, step 1 started and completed
        assert [e["event"] for e in seen] == ["run.started", "step.started", "step.completed"]
        # while no one listens, steps 2 and 3 run
        gates[1].touch()
        gates[2].touch()
        wait_until(lambda: api_a.get(f"/runs/{run_id}").json()["counts"]["completed"] == 3,
                   what="steps 2 and 3")
        gates[3].touch()
        seen += _stream(api_b, run_id, after=seen[-1]["id"])
        expected = ["run.started"]
        for _ in gates:
            expected += ["step.started", "step.completed"]
        expected.append("run.completed")
        assert [e["event"] for e in seen] == expected
        positions = [json.loads(e["data"])["position"] for e in seen[1:-1]]
        assert positions == [1, 1, 2, 2, 3, 3, 4, 4]
        assert len({e["id"] for e in seen}) == len(seen)
        # a stream joined after the end replays the same history, and then nothing
        replay = _stream(api_b, run_id)
        assert [e["id"] for e in replay] == [e["id"] for e in seen]
        assert _stream(api_b, run_id, after=replay[-1]["id"]) == []


class ServerProcessContext:
    """A second server without in-process workers."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def __enter__(self) -> ServerProcess:
        self.server = ServerProcess(self.db_url)
        return self.server

    def __exit__(self, *_: object) -> None:
        self.server.stop()


def test_sigterm_stops_serve_s_workers_gracefully(db_url: str, tmp_path: Path) -> None:
    """`serve --workers` on SIGTERM: the running step finishes, the run goes back to its
    queue (no lease to wait out, no recovery counted) and the worker leaves the table."""
    tokens = _tokens(db_url)
    gates = [tmp_path / "gate-1", tmp_path / "gate-2"]
    server = ServerProcess(db_url, "--workers", "1")
    try:
        with server.client(tokens["alice"]) as api:
            run_id = _start(api, "stepped", inputs={"gates": [str(g) for g in gates]})
            assert _stream(api, run_id, limit=2)[-1]["event"] == "step.started"
        server.proc.send_signal(signal.SIGTERM)
        with fl.Ledger(db_url) as ledger:
            wait_until(lambda: [w.state for w in ledger.workers()] == ["stopping"],
                       what="the in-process worker to start stopping")
            gates[0].touch()  # the step in flight finishes
            err = server.stop(timeout=60)
            run = ledger.get(run_id)
            assert run.status is fl.RunStatus.PENDING, err  # handed back, not held
            assert run.recovery_attempts == 0
            assert [(s.position, s.status) for s in run.steps] == [(1, "completed")]
            assert ledger.workers(include_lost=True) == []
            assert f"run {run_id} (stepped): claimed" in err
            assert f"run {run_id} (stepped): handed back to queue default" in err
    finally:
        server.stop()
