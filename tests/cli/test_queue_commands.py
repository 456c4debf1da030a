"""flowledger queue pause|resume, and the state flowledger queues shows."""

from __future__ import annotations

from tests.cli.conftest import CLI


def test_the_cli_pauses_and_resumes_a_queue(cli: CLI) -> None:
    paused = cli("queue", "pause", "nightly", "--reason", "maintenance")
    assert paused.code == 0 and paused.out.strip() == "nightly: paused"
    assert cli("queue", "pause", "nightly").out.strip() == "nightly: already paused"
    listed = cli("queues", "--json").json()
    assert [(q["name"], q["paused"], q["pause_reason"]) for q in listed] == [
        ("nightly", True, "maintenance")]
    assert "paused (maintenance)" in cli("queues").out
    assert cli("queue", "resume", "nightly").out.strip() == "nightly: resumed"
    assert cli("queue", "resume", "nightly").out.strip() == "nightly: was not paused"
    assert cli("queues", "--json").json() == []
