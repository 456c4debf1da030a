"""Paused queues: workers claim none of their runs until they are resumed, on both
backends."""

from __future__ import annotations

import pytest

import flowledger as fl
from tests.contract.test_queueing import q_plain, running_worker


def test_a_paused_queue_is_not_claimed_until_resumed(ledger: fl.Ledger, db_url: str) -> None:
    assert ledger.pause_queue("slow", reason="provider outage")
    assert not ledger.pause_queue("slow", reason="again")  # the first pause stands
    held = ledger.submit(q_plain, 1, queue="slow")
    probe = ledger.submit(q_plain, 2, queue="fast")
    with running_worker(db_url, queues=("slow", "fast")):
        # The claim that took the probe (submitted after `held`) left the paused queue alone.
        assert probe.result(timeout=60) == 3
        assert held.status() is fl.RunStatus.PENDING
        queues = {q.name: q for q in ledger.queues()}
        assert queues["slow"].paused and queues["slow"].pause_reason == "provider outage"
        assert queues["slow"].ready == 1 and not queues["fast"].paused
        assert ledger.resume_queue("slow")
        assert held.result(timeout=60) == 2
    assert not ledger.resume_queue("slow")
    assert not {q.name: q for q in ledger.queues()}["slow"].paused


def test_a_queue_name_is_checked(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.ConfigurationError):
        ledger.pause_queue("bad\x00name")
    with pytest.raises(fl.ConfigurationError, match="1 to 500 characters"):
        ledger.pause_queue("q", reason="x" * 501)
