"""Webhooks over HTTP against a real ``flowledger serve``: create (the secret once),
list, get, disable, delete; deliveries and attempts; another owner gets 404; bad input
gets readable 422s; the server's own dispatcher delivers, signed."""

from __future__ import annotations

import pytest
import standardwebhooks

import flowledger as fl
from tests.helpers.server import serving
from tests.helpers.webhook_receiver import Receiver
from tests.helpers.workers import wait_until


def test_webhooks_over_http_are_owned_and_delivered_by_the_server(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", "1")  # the receiver is local
    with fl.Ledger(db_url) as ledger:
        alice_token = ledger.create_token("alice").secret
        bob_token = ledger.create_token("bob").secret
    with Receiver().running() as receiver, \
            serving(db_url, "--workers", "1") as server, \
            server.client(alice_token) as alice, server.client(bob_token) as bob:
        paths = alice.get("/openapi.json").json()["paths"]
        assert {"/api/v1/webhooks", "/api/v1/webhooks/{webhook_id}",
                "/api/v1/webhooks/{webhook_id}/deliveries", "/api/v1/webhooks/deliveries",
                "/api/v1/webhooks/deliveries/{delivery_id}",
                "/api/v1/webhooks/deliveries/{delivery_id}/attempts",
                "/api/v1/webhooks/deliveries/{delivery_id}/redeliver"} <= set(paths)
        created = alice.post("/webhooks", json={"url": receiver.url,
                                                "events": ["run.completed"]})
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["owner"] == "alice"
        assert hook["events"] == ["run.completed"] and hook["enabled"] is True
        listed = alice.get("/webhooks").json()
        assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
        assert "secret" not in alice.get(f"/webhooks/{hook['id']}").json()

        run_id = alice.post("/workflows/report/runs", json={"inputs": {"n": 1}}).json()["id"]
        receiver.wait_for(lambda r: len(r.received) == 1, 60)
        (got,) = receiver.received
        payload = standardwebhooks.Webhook(hook["secret"]).verify(got.body, got.headers)
        assert (payload["type"], payload["data"]["run_id"]) == ("run.completed", run_id)
        wait_until(lambda: alice.get(f"/webhooks/{hook['id']}/deliveries").json()[0][
            "status"] == "delivered", what="the delivery to be recorded")
        (delivery,) = alice.get(f"/webhooks/{hook['id']}/deliveries").json()
        assert delivery["id"] == got.id and delivery["run_id"] == run_id
        assert alice.get("/webhooks/deliveries", params={"status": "delivered"}).json()[0][
            "id"] == got.id
        assert alice.get(f"/webhooks/deliveries/{got.id}").json()["attempts"] == 1
        (attempt,) = alice.get(f"/webhooks/deliveries/{got.id}/attempts").json()
        assert attempt["status_code"] == 200 and attempt["error"] is None
        again = alice.post(f"/webhooks/deliveries/{got.id}/redeliver")
        assert again.status_code == 200 and again.json()["status"] == "pending"
        receiver.wait_for(lambda r: len(r.received) == 2, 60)
        assert receiver.received[1].id == got.id

        # Another owner: nothing exists.
        assert bob.get("/webhooks").json() == []
        assert bob.get("/webhooks/deliveries").json() == []
        for method, path in (("GET", f"/webhooks/{hook['id']}"),
                             ("PATCH", f"/webhooks/{hook['id']}"),
                             ("DELETE", f"/webhooks/{hook['id']}"),
                             ("GET", f"/webhooks/{hook['id']}/deliveries"),
                             ("GET", f"/webhooks/deliveries/{got.id}"),
                             ("GET", f"/webhooks/deliveries/{got.id}/attempts"),
                             ("POST", f"/webhooks/deliveries/{got.id}/redeliver")):
            answer = bob.request(method, path, json={"enabled": False}
                                 if method == "PATCH" else None)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["error"] == "not_found"

        disabled = alice.patch(f"/webhooks/{hook['id']}", json={"enabled": False})
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        assert alice.delete(f"/webhooks/{hook['id']}").status_code == 204
        assert alice.get(f"/webhooks/{hook['id']}").status_code == 404


def test_bad_webhook_input_gets_readable_errors(db_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("alice").secret
    with serving(db_url) as server, server.client(token) as api:
        for body, message in (
                ({"url": "ftp://example.com/"}, "must start with http:// or https://"),
                ({"url": "http://127.0.0.1:8000/"}, "a loopback address"),
                ({"url": "http://169.254.169.254/"}, "a cloud metadata address"),
                ({"url": "https://example.com/", "events": ["run.done"]}, "events.0"),
                ({"url": "https://example.com/", "events": []}, "events"),
                ({"events": ["run.failed"]}, "url: Field required")):
            answer = api.post("/webhooks", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"] == "invalid_input"
            assert message in answer.json()["message"], (body, answer.text)
        assert api.get("/webhooks/not-an-id").status_code == 422
        assert api.get("/webhooks/wh_0123456789abcdef").status_code == 404
        bad = api.get("/webhooks/deliveries", params={"status": "lost"})
        assert bad.status_code == 422
        assert api.get("/webhooks").json() == []
