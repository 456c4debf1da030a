"""Step logs: what a step attempt logs is recorded under that attempt, bounded, with its
outcome; readable through ``Ledger.logs`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

import flowledger as fl
from flowledger import logcapture

log = logging.getLogger("tests.steplogs")
log.setLevel(logging.DEBUG)  # the records must exist for Python to hand them over


@fl.step(retries=2, backoff=0)
def ten_then_fail(key: str) -> str:
    attempt = fl.current_step().attempt
    for i in range(10):
        log.info("attempt %d line %d", attempt, i)
    if attempt == 1:
        try:
            raise KeyError("missing")
        except KeyError:
            log.exception("lookup failed")
        raise ValueError("first attempt fails")
    log.debug("done")
    return "ok"


@fl.workflow(name="steplogs_retry")
def retried(key: str) -> str:
    log.warning("the workflow body logs outside any step")
    return ten_then_fail(key)


def test_each_attempt_keeps_its_own_records(ledger: fl.Ledger) -> None:
    handle = ledger.start(retried, "a")
    assert handle.result() == "ok"
    attempts = ledger.logs(handle.id)
    assert [(a.position, a.step, a.attempt) for a in attempts] == [
        (1, "ten_then_fail", 1), (1, "ten_then_fail", 2)]
    first, second = attempts
    assert [e.message for e in first.records] == [
        *(f"attempt 1 line {i}" for i in range(10)), "lookup failed"]
    assert {e.level for e in first.records[:10]} == {"INFO"}
    failure = first.records[-1]
    assert failure.level == "ERROR" and failure.logger == "tests.steplogs"
    assert failure.exception is not None and "KeyError: 'missing'" in failure.exception
    assert [e.message for e in second.records] == [
        *(f"attempt 2 line {i}" for i in range(10)), "done"]
    assert second.records[-1].level == "DEBUG"
    assert not first.truncated and first.dropped == 0
    times = [e.at for e in first.records + second.records]
    assert times == sorted(times)
    # The workflow body's record belongs to no step: it is not filed anywhere.
    assert all("workflow body" not in e.message for a in attempts for e in a.records)
    assert [a.attempt for a in ledger.logs(handle.id, step=1)] == [1, 2]
    assert ledger.logs(handle.id, step=2) == []


@fl.step()
def always_fails() -> None:
    log.warning("about to fail")
    raise RuntimeError("no luck")


@fl.workflow(name="steplogs_failing")
def failing() -> None:
    always_fails()


def test_a_final_failure_keeps_its_logs_and_a_resume_adds_the_next_attempt(
        ledger: fl.Ledger) -> None:
    handle = ledger.start(failing)
    with pytest.raises(fl.RunFailed):
        handle.result()
    assert [(a.attempt, [e.message for e in a.records]) for a in ledger.logs(handle.id)] \
        == [(1, ["about to fail"])]
    with pytest.raises(fl.RunFailed):
        ledger.resume(handle.id).result()
    assert [(a.attempt, len(a.records)) for a in ledger.logs(handle.id)] == [(1, 1), (2, 1)]


@fl.step()
def chatty(lines: int) -> int:
    for i in range(lines):
        log.info("line %d", i)
    return lines


@fl.workflow(name="steplogs_chatty")
def chatty_flow(lines: int) -> int:
    return chatty(lines)


def test_a_step_logging_100000_lines_is_bounded_and_marked(ledger: fl.Ledger) -> None:
    handle = ledger.start(chatty_flow, 100_000)
    assert handle.result() == 100_000
    (attempt,) = ledger.logs(handle.id)
    assert len(attempt.records) == logcapture.MAX_RECORDS
    assert attempt.dropped == 100_000 - logcapture.MAX_RECORDS and attempt.truncated
    assert attempt.records[0].message == "line 0"
    assert attempt.records[-1].message == f"line {logcapture.MAX_RECORDS - 1}"
    assert attempt.to_dict()["truncated"] is True


@fl.step()
def huge_message() -> None:
    log.info("x" * 2_000_000)
    log.info("after the bound")


@fl.workflow(name="steplogs_huge")
def huge_flow() -> None:
    huge_message()


def test_one_huge_record_is_cut_to_the_bound(ledger: fl.Ledger) -> None:
    handle = ledger.start(huge_flow)
    handle.result()
    (attempt,) = ledger.logs(handle.id)
    (kept,) = attempt.records
    assert kept.message.startswith("xxx") and kept.message.endswith("bound was reached]")
    assert len(json.dumps(attempt.to_dict()["records"])) <= logcapture.MAX_BYTES
    assert attempt.dropped == 1


@fl.step()
async def interleaved(name: str, other_arrived: asyncio.Event,
                      mine_arrived: asyncio.Event) -> str:
    log.info("%s starts", name)
    mine_arrived.set()
    await other_arrived.wait()  # both steps are now running at once
    log.info("%s ends", name)
    return name


@fl.workflow(name="steplogs_concurrent")
async def concurrent() -> list[str]:
    a_in, b_in = asyncio.Event(), asyncio.Event()
    return list(await asyncio.gather(interleaved("a", b_in, a_in),
                                     interleaved("b", a_in, b_in)))


def test_concurrent_async_steps_keep_their_records_apart(ledger: fl.Ledger) -> None:
    handle = ledger.start(concurrent)
    assert handle.result() == ["a", "b"]
    found = {a.position: [e.message for e in a.records] for a in ledger.logs(handle.id)}
    assert found == {1: ["a starts", "a ends"], 2: ["b starts", "b ends"]}


quiet = logging.getLogger("tests.steplogs.quiet")
quiet.propagate = False  # no handler sees these: capture happens where records are made
quiet.setLevel(logging.INFO)


@fl.step()
def prints_and_logs() -> int:
    print("printed", "line")
    print("no newline at the end", end="")
    quiet.info("unpropagated")
    helper = threading.Thread(target=lambda: log.info("from another thread"))
    helper.start()  # a plain thread does not carry the step's context: not filed
    helper.join()
    return 1


@fl.workflow(name="steplogs_print")
def print_flow() -> int:
    return prints_and_logs()


def test_print_is_captured_only_when_asked(db_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with fl.Ledger(db_url) as plain:
        run = plain.start(print_flow)
        run.result()
        assert [e.message for a in plain.logs(run.id) for e in a.records] == ["unpropagated"]
    assert "printed line" in capsys.readouterr().out
    with fl.Ledger(db_url, capture_print=True) as capturing:
        run = capturing.start(print_flow)
        run.result()
        entries = [e for a in capturing.logs(run.id) for e in a.records]
        assert [(e.logger, e.message) for e in entries] == [
            ("print", "printed line"), ("tests.steplogs.quiet", "unpropagated"),
            ("print", "no newline at the end")]
    assert "printed line" in capsys.readouterr().out  # still printed as usual


def test_capture_can_be_turned_off(db_url: str) -> None:
    with fl.Ledger(db_url, capture_logs=False) as ledger:
        run = ledger.start(chatty_flow, 5)
        run.result()
        assert ledger.logs(run.id) == []
        ledger.capture_step_logs()
        run = ledger.start(chatty_flow, 5)
        run.result()
        assert [len(a.records) for a in ledger.logs(run.id)] == [5]


def test_logs_are_owner_scoped_and_bad_input_is_refused(ledger: fl.Ledger) -> None:
    handle = ledger.start(chatty_flow, 2, owner="alice")
    handle.result()
    assert len(ledger.for_owner("alice").logs(handle.id)) == 1
    with pytest.raises(fl.RunNotFound):
        ledger.for_owner("bob").logs(handle.id)
    with pytest.raises(fl.RunNotFound):
        ledger.logs("01a00000-0000-7000-8000-000000000000")
    with pytest.raises(fl.ConfigurationError, match="step position"):
        ledger.logs(handle.id, step=0)


def test_a_purged_run_takes_its_logs_with_it(ledger: fl.Ledger) -> None:
    kept = ledger.start(chatty_flow, 2, owner="keep")
    kept.result()
    gone = ledger.start(chatty_flow, 3, owner="go")
    gone.result()
    report = ledger.for_owner("go").purge(0)
    assert report.runs == 1
    with pytest.raises(fl.RunNotFound):
        ledger.logs(gone.id)
    assert ledger.store.logs_of(ledger.run_uuid(gone.id)) == []
    assert [len(a.records) for a in ledger.logs(kept.id)] == [2]
