"""Registered specs over HTTP: a real ``flowledger serve`` (without --app) registers an
owner's spec, starts a run of it, and a real worker process executes it; other owners
see none of it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import flowledger as fl
from tests.helpers.server import serving
from tests.helpers.workers import wait_until, workers

SPEC = textwrap.dedent("""
    flowledger: 1
    name: triage
    version: "1"
    description: Doubles a number, then says hello
    inputs:
      n: {type: integer}
      who: {type: string, default: world}
    steps:
      - id: double
        python: tests.helpers.spec_steps:double
        with: {x: "{{ inputs.n }}"}
      - id: greet
        shell: [echo, "hello {{ inputs.who }}"]
    output: {doubled: "{{ steps.double.output }}", said: "{{ steps.greet.output.stdout | trim }}"}
    """)
YAML = {"content-type": "application/yaml"}


def test_a_registered_spec_runs_on_a_worker_and_stays_with_its_owner(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        alice_token = ledger.create_token("alice").secret
        bob_token = ledger.create_token("bob").secret
    with serving(db_url, app=None) as server:
        alice, bob = server.client(alice_token), server.client(bob_token)
        registered = alice.put("/specs/triage", content=SPEC, headers=YAML)
        assert registered.status_code == 201, registered.text
        info = registered.json()
        assert (info["name"], info["version"], info["owner"]) == ("triage", "1", "alice")
        assert info["steps"] == ["double", "greet"] and "text" not in info
        again = alice.put("/specs/triage", content=SPEC, headers=YAML)
        assert again.status_code == 200  # the same text: nothing changes
        assert again.json() == info
        changed = alice.put("/specs/triage", content=SPEC.replace("hello", "hi"), headers=YAML)
        assert changed.status_code == 409 and "already registered" in changed.json()["message"]

        assert bob.get("/specs/triage").status_code == 404
        assert bob.get("/specs").json() == []
        refused = bob.post("/workflows/triage/runs", json={"inputs": {"n": 1}})
        assert refused.status_code == 404, refused.text

        listed = {w["name"]: w for w in alice.get("/workflows").json()}
        assert listed["triage"]["kind"] == "spec"
        assert [p["name"] for p in listed["triage"]["parameters"]] == ["n", "who"]
        assert alice.get("/specs/triage").json()["text"] == SPEC

        bad = alice.post("/workflows/triage/runs", json={"inputs": {"n": "many"}})
        assert bad.status_code == 422 and "n" in bad.json()["message"]
        started = alice.post("/workflows/triage/runs", json={"inputs": {"n": 21}})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        assert started.json()["status"] == "pending"
        assert bob.get(f"/runs/{run_id}").status_code == 404

        with workers(db_url, 1):
            def finished() -> bool:
                status: str = alice.get(f"/runs/{run_id}").json()["status"]
                return status in ("completed", "failed")

            wait_until(finished, what="the worker to run the spec")
        run: dict[str, Any] = alice.get(f"/runs/{run_id}").json()
        assert run["status"] == "completed", run
        assert run["output"] == {"doubled": 42, "said": "hello world"}
        assert run["entrypoint"] == f"spec:{info['digest']}"
        assert [s["name"] for s in run["steps"]] == ["double", "greet"]

        # Bob's spec of the same name is his alone.
        mine = bob.put("/specs/triage", content=SPEC.replace("hello", "hey"), headers=YAML)
        assert mine.status_code == 201 and mine.json()["digest"] != info["digest"]
        assert [s["owner"] for s in alice.get("/specs").json()] == ["alice"]
        assert alice.delete("/specs/triage").status_code == 204
        assert alice.get("/specs/triage").status_code == 404
        assert bob.get("/specs/triage").status_code == 200


def test_invalid_specs_are_refused_with_their_positions(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("alice").secret
    with serving(db_url, app=None) as server:
        client = server.client(token)
        broken = SPEC.replace("python: tests.helpers.spec_steps:double", "pythn: x:y")
        answer = client.put("/specs/triage", content=broken, headers=YAML)
        assert answer.status_code == 422
        problems = answer.json()["problems"]
        assert problems == [{"line": 11, "column": 5, "path": "steps[0].pythn",
                             "message": "unknown field (did you mean 'python'?)"}]
        renamed = client.put("/specs/other", content=SPEC, headers=YAML)
        assert renamed.status_code == 422 and "named 'triage'" in renamed.json()["message"]
        binary = client.put("/specs/triage", content=b"\xff\xfe\x00", headers=YAML)
        assert binary.status_code == 422 and "UTF-8" in binary.json()["message"]
        assert client.get("/specs").json() == []


def test_a_server_can_refuse_specs_that_run_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kinds.db'}"
    with fl.Ledger(url) as ledger:
        token = ledger.create_token("alice").secret
        ledger.register_spec(SPEC, owner="alice")  # before the server had its rules
    with serving(url, "--spec-kind", "set", "--spec-kind", "mcp", app=None) as server:
        client = server.client(token)
        started = client.post("/workflows/triage/runs", json={"inputs": {"n": 1}})
        assert started.status_code == 422 and "python, shell" in started.json()["message"]
        refused = client.put("/specs/triage", content=SPEC, headers=YAML)
        assert refused.status_code == 422
        assert refused.json()["message"].startswith(
            "this server does not accept specs with python, shell steps")
        stdio = textwrap.dedent("""
            flowledger: 1
            name: tools
            mcp_servers: {tracker: {command: [python3, tracker.py]}}
            steps: [{id: fetch, mcp: {server: tracker, tool: list_issues}}]
            """)
        answer = client.put("/specs/tools", content=stdio, headers=YAML)
        assert answer.status_code == 422 and "stdio MCP server counts as shell" in \
            answer.json()["message"]
        remote = stdio.replace("{command: [python3, tracker.py]}", "{url: 'http://x/mcp'}")
        assert client.put("/specs/tools", content=remote, headers=YAML).status_code == 201
        assert [s["name"] for s in client.get("/specs").json()] == ["tools", "triage"]
    with fl.Ledger(url) as ledger:
        assert ledger.runs().runs == ()  # the refused start recorded nothing
