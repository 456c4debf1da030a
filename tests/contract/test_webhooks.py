"""Webhooks on both backends: subscriptions per owner, the outbox written with the run's
status change, deliveries to a real local HTTP receiver signed per Standard Webhooks
(verified with the ``standardwebhooks`` package), retries, attempts, Retry-After, and
the refusal of private targets."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

import flowledger as fl
from flowledger.webhook_dispatch import WebhookDispatcher
from flowledger.webhooks import EVENTS
from tests.helpers.webhook_receiver import Receiver


@fl.workflow(name="hooked")
def hooked(n: int) -> int:
    return n + 1


@fl.workflow(name="hooked-failing")
def hooked_failing() -> None:
    raise ValueError("it broke")


def dispatcher(ledger: fl.Ledger, **options: object) -> WebhookDispatcher:
    settings: dict[str, object] = {"backoff": 0.01, "poll_interval": 0.01,
                                   "allow_private": True, **options}
    return WebhookDispatcher(ledger, **settings)  # type: ignore[arg-type]


def test_subscriptions_are_listed_disabled_enabled_and_removed(ledger: fl.Ledger) -> None:
    alice = ledger.for_owner("alice")
    hook = alice.add_webhook("https://example.com/hooks", events=["run.failed",
                                                                  "run.completed"])
    assert hook.id.startswith("wh_") and hook.owner == "alice" and hook.enabled
    assert hook.events == ("run.completed", "run.failed")
    assert hook.secret is not None and hook.secret.startswith("whsec_")
    assert len(base64.b64decode(hook.secret.removeprefix("whsec_"))) >= 24
    listed = alice.webhooks()
    assert [(w.id, w.url, w.secret) for w in listed] == [(hook.id, hook.url, None)]
    assert alice.disable_webhook(hook.id).enabled is False
    assert alice.webhook(hook.id).enabled is False
    assert alice.enable_webhook(hook.id).enabled is True
    alice.remove_webhook(hook.id)
    assert alice.webhooks() == []
    with pytest.raises(fl.WebhookNotFound):
        alice.remove_webhook(hook.id)


def test_another_owner_sees_nothing_of_a_webhook(ledger: fl.Ledger) -> None:
    alice, bob = ledger.for_owner("alice"), ledger.for_owner("bob")
    hook = alice.add_webhook("https://example.com/a")
    alice.run(hooked, 1)
    delivery = alice.webhook_deliveries()[0]
    assert bob.webhooks() == [] and bob.webhook_deliveries() == []
    for act in (lambda: bob.webhook(hook.id), lambda: bob.disable_webhook(hook.id),
                lambda: bob.remove_webhook(hook.id),
                lambda: bob.webhook_deliveries(hook.id),
                lambda: bob.webhook_delivery(delivery.id),
                lambda: bob.webhook_attempts(delivery.id),
                lambda: bob.redeliver(delivery.id)):
        with pytest.raises(fl.WebhookNotFound):
            act()
    bob.run(hooked, 2)  # bob's runs never reach alice's subscription
    assert len(alice.webhook_deliveries()) == 1


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/x", "http:// or https://"),
    ("example.com/hooks", "http:// or https://"),
    ("https:///nohost", "names no host"),
    ("https://user:pw@example.com/", "credentials"),
    ("http://127.0.0.1:8080/x", "loopback"),
    ("http://localhost/x", "loopback"),
    ("http://10.1.2.3/x", "private"),
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://[::ffff:192.168.0.1]/", "private"),
    ("", "1 to 2000"),
])
def test_bad_urls_are_refused_readably(ledger: fl.Ledger, url: str, message: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with pytest.raises(fl.ConfigurationError, match=message):
        ledger.add_webhook(url)
    assert ledger.webhooks() == []


def test_private_literals_are_allowed_when_asked(ledger: fl.Ledger,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert ledger.add_webhook("http://127.0.0.1:9/x", allow_private=True).enabled
    monkeypatch.setenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", "1")
    assert ledger.add_webhook("http://10.0.0.1/x").enabled


def test_unknown_events_are_refused(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.ConfigurationError, match=r"unknown webhook event 'run\.done'; "
                                                    r"the events are run\.completed"):
        ledger.add_webhook("https://example.com/", events=["run.done"])
    with pytest.raises(fl.ConfigurationError, match="at least one event"):
        ledger.add_webhook("https://example.com/", events=[])


def test_the_outbox_row_is_written_with_each_status_change(ledger: fl.Ledger) -> None:
    every = ledger.add_webhook("https://example.com/all", events=EVENTS)
    failures = ledger.add_webhook("https://example.com/failures", events=["run.failed"])
    done = ledger.handle(ledger.start(hooked, 1).id)
    done.result()
    with pytest.raises(fl.RunFailed):
        ledger.run(hooked_failing)
    paused = ledger.submit(hooked, 2, queue="hold")
    assert ledger.pause(paused.id, reason="later")
    cancelled = ledger.submit(hooked, 3, queue="hold")
    assert ledger.cancel(cancelled.id)
    events = [(d.event, d.run_id) for d in reversed(ledger.webhook_deliveries(every.id))]
    assert [e for e, _ in events] == ["run.completed", "run.failed", "run.paused",
                                      "run.cancelled"]
    assert events[0][1] == done.id and events[2][1] == paused.id
    only = ledger.webhook_deliveries(failures.id)
    assert [d.event for d in only] == ["run.failed"]
    failed = only[0].payload
    assert failed["type"] == "run.failed"
    assert failed["data"]["error"] == {"type": "builtins.ValueError", "message": "it broke"}
    assert failed["data"]["workflow"] == "hooked-failing"
    pause = ledger.webhook_deliveries(every.id, status="pending")[1].payload["data"]
    assert (pause["status"], pause["pause_reason"], pause["queue"]) == ("paused", "later",
                                                                        "hold")
    assert all(d.status == "pending" and d.attempts == 0
               for d in ledger.webhook_deliveries())


def test_no_delivery_for_a_disabled_webhook_or_another_event(ledger: fl.Ledger) -> None:
    hook = ledger.add_webhook("https://example.com/", events=["run.cancelled"])
    ledger.run(hooked, 1)
    ledger.disable_webhook(hook.id)
    ledger.cancel(ledger.submit(hooked, 2, queue="hold").id)
    assert ledger.webhook_deliveries() == []


def test_a_delivery_is_signed_per_standard_webhooks(ledger: fl.Ledger) -> None:
    with Receiver().running() as receiver:
        hook = ledger.add_webhook(receiver.url, allow_private=True)
        run_id = ledger.start(hooked, 41).id
        ledger.handle(run_id).result()
        sender = dispatcher(ledger)
        assert sender.run_once() == 1
        (got,) = receiver.received
        assert got.path == "/hooks" and got.headers["content-type"] == "application/json"
        payload = standardwebhooks.Webhook(hook.secret or "").verify(got.body, got.headers)
        assert payload["type"] == "run.completed"
        assert payload["data"]["run_id"] == run_id
        assert payload["data"]["status"] == "completed"
        stamp = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
        assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=1)
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            other = "whsec_" + base64.b64encode(b"another secret of 24+ bytes").decode()
            standardwebhooks.Webhook(other).verify(got.body, got.headers)
        delivery = ledger.webhook_deliveries()[0]
        assert (delivery.id, delivery.status, delivery.attempts) == (
            got.id, "delivered", 1)
        assert delivery.delivered_at is not None and delivery.next_attempt_at is None
        assert sender.run_once() == 0  # delivered once


def test_a_receiver_failing_three_times_gets_the_fourth_try(ledger: fl.Ledger) -> None:
    with Receiver([500, 500, 500]).running() as receiver:
        hook = ledger.add_webhook(receiver.url, allow_private=True)
        ledger.run(hooked, 1)
        sender = dispatcher(ledger).start()
        receiver.wait_for(lambda r: len(r.received) == 4)
        sender.stop()  # the attempt in flight is recorded before it returns
        assert len({r.id for r in receiver.received}) == 1
        for got in receiver.received:
            standardwebhooks.Webhook(hook.secret or "").verify(got.body, got.headers)
        delivery = ledger.webhook_deliveries(hook.id)[0]
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "delivered", 4, 200)
        attempts = ledger.webhook_attempts(delivery.id)
        assert [(a.number, a.status_code, a.error) for a in attempts] == [
            (1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 500, "HTTP 500"), (4, 200, None)]
        assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in attempts)
        assert all(len(a.response or "") <= 256 for a in attempts)
        assert attempts[0].response == "x" * 256 and attempts[3].response == '{"ok": true}'


def test_after_the_last_retry_a_delivery_fails_and_is_redelivered_by_hand(
        ledger: fl.Ledger) -> None:
    with Receiver([503, 503]).running() as receiver:
        ledger.add_webhook(receiver.url, allow_private=True)
        ledger.run(hooked, 1)
        sender = dispatcher(ledger, max_attempts=2).start()
        receiver.wait_for(lambda r: len(r.received) == 2)
        sender.stop()
        (delivery,) = ledger.webhook_deliveries(status="failed")
        assert (delivery.attempts, delivery.last_error) == (2, "HTTP 503")
        again = ledger.redeliver(delivery.id)
        assert again.status == "pending" and again.id == delivery.id
        assert dispatcher(ledger).run_once() == 1
        assert receiver.received[-1].id == delivery.id
        assert ledger.webhook_delivery(delivery.id).status == "delivered"
        assert len(ledger.webhook_attempts(delivery.id)) == 3


def test_retry_after_is_honoured(ledger: fl.Ledger) -> None:
    with Receiver([429], retry_after="3600").running() as receiver:
        ledger.add_webhook(receiver.url, allow_private=True)
        ledger.run(hooked, 1)
        sender = dispatcher(ledger)
        assert sender.run_once() == 1
        delivery = ledger.webhook_deliveries()[0]
        assert delivery.status == "pending" and delivery.next_attempt_at is not None
        wait = delivery.next_attempt_at - datetime.now(UTC)
        assert timedelta(minutes=55) < wait <= timedelta(hours=1)
        assert sender.run_once() == 0  # not due before then


def test_the_retry_window_ends_in_failure(ledger: fl.Ledger) -> None:
    with Receiver([500]).running() as receiver:
        ledger.add_webhook(receiver.url, allow_private=True)
        ledger.run(hooked, 1)
        assert dispatcher(ledger, backoff=60, retry_for=1).run_once() == 1
        assert ledger.webhook_deliveries()[0].status == "failed"


def test_a_private_target_is_refused_at_send_time_unless_allowed(
        ledger: fl.Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with Receiver().running() as receiver:
        # Subscribed with the check waived: the address is checked again at each send.
        hook = ledger.add_webhook(receiver.url, allow_private=True)
        ledger.run(hooked, 1)
        assert dispatcher(ledger, allow_private=False, max_attempts=1).run_once() == 1
        assert receiver.received == []
        delivery = ledger.webhook_deliveries(hook.id)[0]
        (attempt,) = ledger.webhook_attempts(delivery.id)
        assert attempt.status_code is None and attempt.error is not None
        assert "refused" in attempt.error and "loopback" in attempt.error
        assert delivery.status == "failed"
        ledger.redeliver(delivery.id)
        monkeypatch.setenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", "1")
        assert WebhookDispatcher(ledger).run_once() == 1
        assert [r.id for r in receiver.received] == [delivery.id]


def test_removing_a_webhook_removes_its_deliveries(ledger: fl.Ledger) -> None:
    hook = ledger.add_webhook("https://example.com/")
    ledger.run(hooked, 1)
    assert len(ledger.webhook_deliveries()) == 1
    ledger.remove_webhook(hook.id)
    assert ledger.webhook_deliveries() == []


def test_purging_a_run_removes_its_deliveries(ledger: fl.Ledger) -> None:
    ledger.add_webhook("https://example.com/")
    run_id = ledger.start(hooked, 1).id
    ledger.handle(run_id).result()
    assert len(ledger.webhook_deliveries()) == 1
    ledger.purge(0)
    assert ledger.webhook_deliveries() == []


def test_a_worker_sends_deliveries(ledger: fl.Ledger,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_WEBHOOK_ALLOW_PRIVATE", "1")
    with Receiver().running() as receiver:
        hook = ledger.add_webhook(receiver.url)
        worker = fl.Worker(ledger=ledger, queues=["hooks"], poll_interval=0.05)
        thread = threading.Thread(target=worker.run,
                                  kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            run_id = ledger.submit(hooked, 1, queue="hooks").id
            receiver.wait_for(lambda r: len(r.received) == 1)
        finally:
            worker.stop()
            thread.join(60)
        payload = standardwebhooks.Webhook(hook.secret or "").verify(
            receiver.received[0].body, receiver.received[0].headers)
        assert payload["data"]["run_id"] == run_id
