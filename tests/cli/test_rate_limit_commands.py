"""flowledger rate-limit set | ls | rm and queue-limits --rate, in-process on both
backends: what they print, and the exit codes of bad input."""

from __future__ import annotations

import pytest

import flowledger as fl
from tests.cli.conftest import CLI


def test_set_list_and_remove(cli: CLI, db_url: str) -> None:
    made = cli("rate-limit", "set", "openai", "500/min")
    assert made.code == 0 and "openai: 500/min (burst 1)" in made.out
    assert cli("rate-limit", "set", "tokens", "90000/min", "--burst", "4000").code == 0
    listed = cli("rate-limit", "ls", "--json").json()
    assert [(r["name"], r["rate"], r["burst"]) for r in listed] == \
        [("openai", "500/min", 1), ("tokens", "90000/min", 4000)]
    table = cli("rate-limit", "ls").out
    assert "openai" in table and "90000/min" in table
    assert cli("rate-limit", "rm", "openai").code == 0
    with fl.Ledger(db_url) as ledger:
        assert [r.name for r in ledger.rate_limits()] == ["tokens"]


@pytest.mark.parametrize("rate", ["fast", "0/s", "-5/s", "10/fortnight", "5"])
def test_a_bad_rate_exits_2_with_a_readable_message(cli: CLI, rate: str) -> None:
    result = cli("rate-limit", "set", "openai", "--", rate)  # "--": "-5/s" is no option
    assert result.code == 2
    assert "a rate is a positive whole number per period" in result.err
    assert cli("queue-limits", "q", f"--rate={rate}").code == 2


def test_a_bad_burst_exits_2(cli: CLI) -> None:
    result = cli("rate-limit", "set", "openai", "5/s", "--burst", "6")
    assert result.code == 2 and "burst must be a whole number from 1 to the limit" in result.err


def test_removing_an_unknown_limit_exits_3(cli: CLI) -> None:
    result = cli("rate-limit", "rm", "nowhere")
    assert result.code == 3 and "no rate limit named 'nowhere'" in result.err


def test_queue_limits_take_rates(cli: CLI) -> None:
    result = cli("queue-limits", "llm", "--rate", "100/s", "--key-rate", "10/s")
    assert result.code == 0 and "rate 100/s, key rate 10/s" in result.out
    (queue,) = [q for q in cli("queues", "--json").json() if q["name"] == "llm"]
    assert (queue["rate"], queue["key_rate"]) == ("100/s", "10/s")
    assert "100/s (10/s per key)" in cli("queues").out
