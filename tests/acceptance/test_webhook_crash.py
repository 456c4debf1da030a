"""Webhook deliveries survive crashes: a dispatcher SIGKILLed mid-delivery delivers
after a restart with the same ``webhook-id``; two dispatcher processes never send one
delivery at the same time; a process SIGKILLed right after a run completed leaves the
delivery in the outbox, and another dispatcher sends it. Real processes, a real HTTP
receiver, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import standardwebhooks

import flowledger as fl
from flowledger.webhook_dispatch import WebhookDispatcher
from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.webhook_receiver import Receiver

MODULE = "tests.helpers.webhook_dispatcher"


@fl.workflow(name="hooked-here")
def hooked_here(n: int) -> int:
    return n + 1


class Process:
    """A child of ``tests.helpers.webhook_dispatcher`` whose stdout lines the test reads."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, *args], cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=CHILD_PATH), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []

    def expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # a blocking read: no polling
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"child ended without printing {prefix!r}: {self.lines}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def test_a_dispatcher_killed_mid_delivery_delivers_after_a_restart(db_url: str) -> None:
    hold = threading.Event()
    with Receiver(hold=hold).running() as receiver, fl.Ledger(db_url) as ledger:
        hook = ledger.add_webhook(receiver.url, allow_private=True)
        ledger.run(hooked_here, 1)
        first = Process("dispatch", db_url, "1")
        try:
            first.expect("ready")
            receiver.wait_for(lambda r: len(r.started) == 1)  # held mid-delivery
            first.kill()
        finally:
            first.kill()
        hold.set()  # the held request ends; its answer goes nowhere
        second = Process("dispatch", db_url, "30")
        try:
            delivered = second.expect("delivered ")
        finally:
            second.kill()
        assert receiver.started == [delivered, delivered]
        for got in receiver.received:
            standardwebhooks.Webhook(hook.secret or "").verify(got.body, got.headers)
        delivery = ledger.webhook_delivery(delivered)
        assert (delivery.status, delivery.attempts) == ("delivered", 2)
        attempts = ledger.webhook_attempts(delivered)
        assert [(a.number, a.status_code) for a in attempts] == [(1, None), (2, 200)]
        assert "dispatcher stopped" in (attempts[0].error or "")


def test_two_dispatchers_never_send_one_delivery_at_once(db_url: str) -> None:
    runs = 30
    with Receiver(handle_s=0.01).running() as receiver, fl.Ledger(db_url) as ledger:
        ledger.add_webhook(receiver.url, allow_private=True)
        for n in range(runs):
            ledger.run(hooked_here, n)
        assert len(ledger.webhook_deliveries(limit=100)) == runs
        children = [Process("dispatch", db_url, "60") for _ in range(2)]
        try:
            for child in children:
                child.expect("ready")
            receiver.wait_for(lambda r: len({got.id for got in r.received}) == runs, 60)
        finally:
            for child in children:
                child.kill()
        assert receiver.overlaps == []
        assert len(receiver.started) == runs  # each delivery sent once


def test_a_run_completed_just_before_a_sigkill_is_still_delivered(db_url: str) -> None:
    with Receiver().running() as receiver, fl.Ledger(db_url) as ledger:
        hook = ledger.add_webhook(receiver.url, allow_private=True)
        child = Process("complete", db_url)
        try:
            run_id = child.expect("completed ")
        finally:
            child.kill()
        (waiting,) = ledger.webhook_deliveries()
        assert (waiting.run_id, waiting.event, waiting.status) == (run_id, "run.completed",
                                                                   "pending")
        assert WebhookDispatcher(ledger, allow_private=True).run_once() == 1
        (got,) = receiver.received
        payload = standardwebhooks.Webhook(hook.secret or "").verify(got.body, got.headers)
        assert got.id == waiting.id and payload["data"]["run_id"] == run_id
        assert ledger.webhook_delivery(waiting.id).status == "delivered"
