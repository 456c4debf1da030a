"""run_id in the body of POST /workflows/{name}/runs: idempotent, conflicts are 409."""

from __future__ import annotations

import uuid

import flowledger as fl
from tests.helpers.server import serving


def test_start_route_takes_a_run_id(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        secret = ledger.create_token("alice").secret
    chosen = str(uuid.uuid4())
    with serving(db_url) as server, server.client(secret) as api:
        first = api.post("/workflows/report/runs", json={"inputs": {"n": 1}, "run_id": chosen})
        assert first.status_code == 202, first.text
        assert first.json()["id"] == chosen and first.json()["created"] is True
        again = api.post("/workflows/report/runs", json={"inputs": {"n": 2}, "run_id": chosen})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == chosen and again.json()["created"] is False
        bad = api.post("/workflows/report/runs", json={"inputs": {"n": 1}, "run_id": "nope"})
        assert bad.status_code == 422 and "run_id must be a UUID" in bad.json()["message"]
        other = str(uuid.uuid4())
        with fl.Ledger(db_url) as ledger:
            assert [r.id for r in ledger.runs(workflow="report").runs] == [chosen]

            @fl.workflow(name="not_report")
            def not_report() -> None:
                return None

            ledger.for_owner("alice").submit(not_report, run_id=other)
        clash = api.post("/workflows/report/runs", json={"inputs": {"n": 1}, "run_id": other})
        assert clash.status_code == 409, clash.text
        assert "already a run of workflow 'not_report'" in clash.json()["message"]
