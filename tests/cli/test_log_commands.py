"""`flowledger logs` and `flowledger inspect --logs`: what steps logged, per attempt;
`--follow` prints attempts as they end, from another process, until the run ends."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import flowledger as fl
from tests.cli.conftest import CLI
from tests.helpers.gate import Gate

log = logging.getLogger("tests.cli.logs")
log.setLevel(logging.INFO)


@fl.step(retries=1, backoff=0)
def noisy(lines: int) -> int:
    attempt = fl.current_step().attempt
    for i in range(lines):
        log.info("attempt %d says %d", attempt, i)
    if attempt == 1:
        log.error("giving up on attempt 1")
        raise ValueError("try again")
    return lines


@fl.workflow(name="cli-logs")
def noisy_flow(lines: int) -> int:
    return noisy(lines)


def test_logs_shows_each_attempt_and_filters_by_step(cli: CLI, db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.start(noisy_flow, 3)
        run_id = handle.id
        assert handle.result() == 3
    shown = cli("logs", run_id)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    first, second = lines.index("step 1 noisy · attempt 1"), lines.index(
        "step 1 noisy · attempt 2")
    assert first < second
    assert [line.split(" ", 1)[1].split() for line in lines[first + 1:first + 5]] == [
        ["INFO", "tests.cli.logs:", "attempt", "1", "says", "0"],
        ["INFO", "tests.cli.logs:", "attempt", "1", "says", "1"],
        ["INFO", "tests.cli.logs:", "attempt", "1", "says", "2"],
        ["ERROR", "tests.cli.logs:", "giving", "up", "on", "attempt", "1"]]
    assert "attempt 2 says 2" in lines[-1]
    listed = cli("logs", run_id, "--step", "1", "--json").json()
    assert [(a["position"], a["attempt"], len(a["records"])) for a in listed] == [
        (1, 1, 4), (1, 2, 3)]
    assert listed[0]["records"][3]["level"] == "ERROR"
    none = cli("logs", run_id, "--step", "2")
    assert none.code == 0 and none.out == "" and "no logs recorded for step 2" in none.err


def test_inspect_logs_and_the_truncation_marker(cli: CLI, db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.start(noisy_flow, 1_500)
        run_id = handle.id
        assert handle.result() == 1_500
    text = cli("inspect", run_id, "--logs").out
    assert "logs" in text.splitlines() and "attempt 2 says 998" in text
    assert "truncated: 501 more records were not kept" in text  # 1,000 kept of 1,501
    assert "truncated: 500 more records" in text
    record = cli("inspect", run_id, "--logs", "--json").json()
    assert [(a["attempt"], a["dropped"], a["truncated"]) for a in record["logs"]] == [
        (1, 501, True), (2, 500, True)]
    assert "logs" not in cli("inspect", run_id, "--json").json()


def test_bad_input_is_refused_readably(cli: CLI) -> None:
    missing = cli("logs", "0000")
    assert missing.code == 3 and missing.err.strip() == "error: no run with id '0000'"
    assert cli("logs", "0000", "--step", "0").code == 2


gates = [Gate()]  # each test run appends its own


@fl.step()
def before() -> str:
    log.info("before the gate")
    return "a"


@fl.step()
def after() -> str:
    gates[-1].wait()
    log.info("after the gate")
    return "b"


@fl.workflow(name="cli-logs-follow")
def gated() -> str:
    return before() + after()


def test_follow_prints_attempts_as_they_end_until_the_run_ends(db_url: str) -> None:
    gate = Gate()
    gates.append(gate)
    with fl.Ledger(db_url) as ledger:
        handle = ledger.start(gated)
        assert gate.arrived.wait(30)
        follower = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "--db", db_url, "logs", handle.id,
             "--follow", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert follower.stdout is not None
            first = json.loads(follower.stdout.readline())  # printed while the run waits
            assert (first["position"], first["records"][0]["message"]) == (1, "before the gate")
            assert follower.poll() is None  # still following: the run has not ended
            gate.open()
            assert handle.result() == "ab"
            rest, err = follower.communicate(timeout=60)
        finally:
            follower.kill()
        assert follower.returncode == 0, err
        (second,) = [json.loads(line) for line in rest.splitlines()]
        assert (second["position"], second["records"][0]["message"]) == (2, "after the gate")
