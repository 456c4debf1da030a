"""Bulk cancel over HTTP against a real server: owner-scoped, dry run, filters required;
GET /runs with the lineage and executor filters."""

from __future__ import annotations

import flowledger as fl
from tests.helpers import http_app
from tests.helpers.server import serving


def test_bulk_cancel_and_listing_filters_over_http(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("alice")
        bob = ledger.create_token("bob").secret
        mine = {ledger.submit(http_app.report, n, owner="alice", queue="bulk").id
                for n in range(4)}
        theirs = ledger.submit(http_app.report, 9, owner="bob", queue="bulk").id
    with serving(db_url) as server:
        alice, other = server.client(token.secret), server.client(bob)
        refused = alice.post("/runs/cancel", json={})
        assert refused.status_code == 422 and "no filter given" in refused.text
        assert alice.post("/runs/cancel", json={"colour": "red"}).status_code == 422
        dry = alice.post("/runs/cancel", json={"queue": "bulk", "dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["count"] == 4 and set(dry.json()["run_ids"]) == mine
        listed = alice.get("/runs", params={"status": "pending", "top_level": "true"})
        assert {r["id"] for r in listed.json()["runs"]} == mine  # the dry run changed nothing
        # Bob's token cannot reach Alice's runs, even naming her as the owner.
        assert other.post("/runs/cancel", json={"owner": "alice", "all": True}
                          ).json()["count"] == 0
        assert other.post("/runs/cancel", json={"all": True}).json()["run_ids"] == [theirs]
        done = alice.post("/runs/cancel", json={"queue": "bulk", "status": ["pending"]})
        assert done.json() == {"action": "cancel", "count": 4, "dry_run": False,
                               "run_ids": done.json()["run_ids"], "skipped": []}
        assert set(done.json()["run_ids"]) == mine
        assert alice.get("/runs", params={"status": "pending"}).json()["runs"] == []
        assert alice.get("/runs", params={"executor": "nowhere:"}).json()["runs"] == []
        assert alice.get("/runs", params={"forked_from": sorted(mine)[0]}).json()["runs"] == []
    with fl.Ledger(db_url) as ledger:
        assert ledger.get(theirs, steps=False).status is fl.RunStatus.CANCELLED
