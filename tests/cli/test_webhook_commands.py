"""`flowledger webhooks`: add prints the secret once; ls, disable, enable, rm; the
deliveries of a webhook and the attempts of one; redeliver; readable errors."""

from __future__ import annotations

import pytest

import flowledger as fl
from flowledger.webhook_dispatch import WebhookDispatcher
from tests.cli.conftest import CLI
from tests.helpers.webhook_receiver import Receiver


@fl.workflow(name="cli-hooked")
def cli_hooked(n: int) -> int:
    return n


def test_webhooks_are_added_listed_disabled_and_removed(cli: CLI) -> None:
    added = cli("webhooks", "add", "https://example.com/hooks", "--event", "run.failed",
                "--event", "run.paused")
    assert added.code == 0, added.err
    secret = added.out.strip()
    assert secret.startswith("whsec_") and "cannot be shown again" in added.err
    (hook,) = cli("webhooks", "ls", "--json").json()
    assert (hook["url"], hook["events"], hook["enabled"]) == (
        "https://example.com/hooks", ["run.failed", "run.paused"], True)
    assert "secret" not in hook and secret not in cli("webhooks", "ls").out
    assert cli("webhooks", "disable", hook["id"]).code == 0
    assert cli("webhooks", "ls", "--json").json()[0]["enabled"] is False
    assert cli("webhooks", "enable", hook["id"]).code == 0
    assert cli("webhooks", "rm", hook["id"]).out.strip() == f"removed webhook {hook['id']}"
    empty = cli("webhooks", "ls")
    assert empty.out == "" and "no webhooks" in empty.err
    missing = cli("webhooks", "rm", hook["id"])
    assert missing.code == 3 and f"no webhook '{hook['id']}'" in missing.err


def test_bad_input_is_refused_readably(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", raising=False)
    bad_event = cli("webhooks", "add", "https://example.com/", "--event", "run.done")
    assert bad_event.code == 2
    assert "unknown webhook event 'run.done'; the events are run.completed" in bad_event.err
    bad_url = cli("webhooks", "add", "ftp://example.com/")
    assert bad_url.code == 2 and "must start with http:// or https://" in bad_url.err
    private = cli("webhooks", "add", "http://192.168.1.10/hook")
    assert private.code == 2 and "a private address" in private.err
    assert "FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE=1" in private.err
    bad_status = cli("webhooks", "deliveries", "--status", "lost")
    assert bad_status.code == 2 and "unknown delivery status 'lost'" in bad_status.err


def test_deliveries_attempts_and_redelivery(cli: CLI, db_url: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", "1")
    with Receiver([500]).running() as receiver, fl.Ledger(db_url) as ledger:
        hook_id = cli("webhooks", "add", receiver.url, "--json").json()["id"]
        ledger.run(cli_hooked, 1)
        WebhookDispatcher(ledger, max_attempts=1).run_once()
        (delivery,) = cli("webhooks", "deliveries", hook_id, "--json").json()
        assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == (
            "failed", 1, "HTTP 500")
        assert cli("webhooks", "deliveries", "--status", "delivered", "--json").json() == []
        shown = cli("webhooks", "deliveries", delivery["id"])
        assert "500" in shown.out and "HTTP 500" in shown.out
        history = cli("webhooks", "deliveries", delivery["id"], "--json").json()
        assert [a["status_code"] for a in history["attempt_history"]] == [500]
        again = cli("webhooks", "redeliver", delivery["id"])
        assert again.code == 0 and "is pending" in again.out
        assert WebhookDispatcher(ledger).run_once() == 1
        assert [r.id for r in receiver.received] == [delivery["id"]] * 2
        listed = cli("webhooks", "deliveries")
        assert delivery["id"] in listed.out and "delivered" in listed.out
        assert cli("webhooks", "redeliver", "msg_nope").code == 3
