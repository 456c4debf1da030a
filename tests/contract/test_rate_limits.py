"""Shared rate limits through the Ledger, on SQLite and PostgreSQL: named limits (set,
change, list, remove), steps waiting for them (sync, async, computed units, the wait on
record), queue claim rates, and bad input."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import timedelta

import pytest

import flowledger as fl
from flowledger import ids

calls: list[float] = []

# Most of these measure gaps between calls: they run after the parallel part of the
# suite, alone (scripts/test).
pytestmark = pytest.mark.serial


@fl.step(rate_limit="contract")
def limited(n: int) -> int:
    calls.append(time.monotonic())
    return n


@fl.step(rate_limit=("contract", lambda n: n))
def costly(n: int) -> int:
    calls.append(time.monotonic())
    return n


@fl.step(rate_limit="contract")
async def limited_async(n: int) -> int:
    calls.append(time.monotonic())
    return n


@fl.step(rate_limit="nowhere", retries=3)
def unknown(n: int) -> int:
    return n


@fl.workflow(name="rl_steps")
def rl_steps(count: int) -> int:
    return sum(limited(n) for n in range(count))


@fl.workflow(name="rl_costly")
def rl_costly(units: int) -> int:
    return costly(units) + limited(0)


@fl.workflow(name="rl_async")
async def rl_async(count: int) -> int:
    return sum(await asyncio.gather(*(limited_async(n) for n in range(count))))


@fl.workflow(name="rl_unknown")
def rl_unknown() -> int:
    return unknown(1)


@fl.workflow(name="rl_plain")
def rl_plain() -> int:
    return 1


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_limits_are_set_changed_listed_and_removed(ledger: fl.Ledger) -> None:
    made = ledger.set_rate_limit("openai", 500, per=timedelta(minutes=1))
    assert (made.name, made.limit, made.per, made.burst, made.rate) == \
        ("openai", 500, timedelta(minutes=1), 1, "500/min")
    ledger.set_rate_limit("anthropic", 50, burst=10)
    ledger.set_rate_limit("openai", 600, per=timedelta(minutes=1))
    assert [(r.name, r.rate, r.burst) for r in ledger.rate_limits()] == \
        [("anthropic", "50/s", 10), ("openai", "600/min", 1)]
    assert ledger.remove_rate_limit("openai") is True
    assert ledger.remove_rate_limit("openai") is False
    assert [r.name for r in ledger.rate_limits()] == ["anthropic"]


def test_steps_are_spaced_by_their_limit(ledger: fl.Ledger) -> None:
    ledger.set_rate_limit("contract", 10)
    calls.clear()
    started = time.monotonic()
    assert ledger.run(rl_steps, 6) == 15
    assert time.monotonic() - started >= 0.5 - 0.01  # five intervals of 100 ms
    assert calls[-1] - calls[0] >= 0.5 - 0.01
    # A thread that wakes late (a loaded machine) shortens the gap after it, never the
    # spacing of the reserved starts: a little slack for that.
    assert min(gaps(calls)) >= 0.1 - 0.04
    # Each wait is on record with its attempt's logs; the first did not wait.
    run = next(iter(ledger.runs(limit=1)))
    messages = [e.message for a in ledger.logs(run.id) for e in a.records]
    assert len(messages) == 6
    assert messages[0] == "rate limit 'contract': waited 0.000s for 1 unit"
    # A step reserves when the previous one has ended: it waits the rest of 100 ms (none
    # when the machine was so slow that 100 ms had passed already), never more.
    waited = [float(m.split("waited ")[1].split("s")[0]) for m in messages[1:]]
    assert all(0.0 <= w <= 0.1 for w in waited), waited
    assert sum(waited) > 0.1, waited  # on a machine that keeps up, most do wait


def test_computed_units_make_the_next_call_wait_for_them(ledger: fl.Ledger) -> None:
    ledger.set_rate_limit("contract", 20)
    calls.clear()
    ledger.run(rl_costly, 6)  # 6 units at 20/s: the next call waits 300 ms
    assert 0.3 - 0.02 <= gaps(calls)[0] < 1.0


def test_async_steps_wait_without_blocking_the_loop(ledger: fl.Ledger) -> None:
    ledger.set_rate_limit("contract", 20)
    calls.clear()
    assert ledger.run(rl_async, 4) == 6
    assert sorted(calls)[-1] - sorted(calls)[0] >= 0.15 - 0.02


def test_a_burst_lets_calls_start_together(ledger: fl.Ledger) -> None:
    ledger.set_rate_limit("contract", 2, burst=2)
    calls.clear()
    ledger.run(rl_steps, 2)
    assert gaps(calls)[0] < 0.4  # without the burst: 500 ms


def test_a_limit_is_shared_by_ledgers_on_one_database(db_url: str) -> None:
    with fl.Ledger(db_url) as first, fl.Ledger(db_url) as second:
        first.set_rate_limit("contract", 10)
        calls.clear()
        first.run(rl_steps, 2)
        second.run(rl_steps, 2)
        assert min(gaps(calls)) >= 0.1 - 0.04  # (late wake-ups: see above)
        assert calls[-1] - calls[0] >= 0.3 - 0.01


def test_an_unknown_limit_fails_the_step_clearly_and_is_not_retried(
        ledger: fl.Ledger) -> None:
    with pytest.raises(fl.RunFailed, match="rate limit 'nowhere', which is not set"):
        ledger.run(rl_unknown)
    run = next(iter(ledger.runs(limit=1)))
    assert run.status is fl.RunStatus.FAILED
    step = ledger.step(run.id, 1)
    assert step.attempts == 1 and step.error is not None
    assert step.error.type == "flowledger.errors.RateLimitNotFound"
    assert issubclass(fl.RateLimitNotFound, fl.ConfigurationError)


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("x", 0), {}, "positive whole number"),
    (("x", -3), {}, "positive whole number"),
    (("x", 1.5), {}, "positive whole number"),
    (("x", 10), {"per": timedelta(0)}, "between 1 ms and 366 days"),
    (("x", 10), {"per": timedelta(seconds=-1)}, "between 1 ms and 366 days"),
    (("x", 10), {"per": 5}, "timedelta"),
    (("x", 10), {"burst": 0}, "burst"),
    (("x", 10), {"burst": 11}, "burst"),
    (("", 10), {}, "rate limit name"),
])
def test_bad_limits_are_refused(ledger: fl.Ledger, args: tuple[object, ...],
                                kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(fl.ConfigurationError, match=message):
        ledger.set_rate_limit(*args, **kwargs)  # type: ignore[arg-type]
    assert ledger.rate_limits() == []


@pytest.mark.parametrize("rate", ["fast", "0/s", "-1/s", "10/fortnight"])
def test_bad_queue_rates_are_refused(ledger: fl.Ledger, rate: str) -> None:
    with pytest.raises(fl.ConfigurationError, match="a rate is"):
        ledger.set_queue_limits("q", rate=rate)
    with pytest.raises(fl.ConfigurationError, match="a rate is"):
        ledger.set_queue_limits("q", key_rate=rate)


def test_a_bad_step_rate_limit_is_refused_at_decoration() -> None:
    with pytest.raises(fl.ConfigurationError, match="rate_limit is"):
        fl.step(rate_limit=5)  # type: ignore[call-overload]
    with pytest.raises(fl.ConfigurationError, match="positive number"):
        fl.step(rate_limit=("x", 0))


def test_queue_rates_are_stored_and_shown(ledger: fl.Ledger) -> None:
    ledger.set_queue_limits("llm", concurrency=3, rate="100/s", key_rate="5/min")
    (info,) = [q for q in ledger.queues() if q.name == "llm"]
    assert (info.concurrency, info.rate, info.key_rate) == (3, "100/s", "5/min")
    ledger.set_queue_limits("llm", concurrency=3)
    (info,) = [q for q in ledger.queues() if q.name == "llm"]
    assert (info.rate, info.key_rate) == (None, None)


def _claim(ledger: fl.Ledger, queue: str, limit: int = 10) -> tuple[int, int | None]:
    result = ledger.store.claim_runs([queue], "test-worker", limit, 30_000_000, 5,
                                     ids.now_us, ids.new_token)
    return len(result.claimed), result.next_due


def test_claims_respect_a_queue_rate(ledger: fl.Ledger) -> None:
    ledger.set_queue_limits("rated", rate="2/s")
    for _ in range(4):
        ledger.submit(rl_plain, queue="rated")
    claimed, due = _claim(ledger, "rated")
    assert claimed == 1  # the next one conforms 500 ms later
    assert due is not None and 0.3 <= (due - ids.now_us()) / 1e6 <= 0.55
    assert _claim(ledger, "rated")[0] == 0
    deadline = time.monotonic() + 5
    while _claim(ledger, "rated")[0] == 0:  # polled, not slept: the due time is the point
        assert time.monotonic() < deadline, "the rate never let the next run in"
        time.sleep(0.02)
    assert time.monotonic() + 5 - deadline >= 0.35


def test_claims_respect_a_key_rate(ledger: fl.Ledger) -> None:
    ledger.set_queue_limits("keyed", key_rate="1/min")
    for key in ("a", "a", "b", "b", None):
        ledger.submit(rl_plain, queue="keyed", concurrency_key=key)
    # One run per key now (and the run without a key): the others wait a minute.
    assert _claim(ledger, "keyed")[0] == 3
    claimed, due = _claim(ledger, "keyed")
    assert claimed == 0 and due is not None and (due - ids.now_us()) / 1e6 > 50


@fl.step(rate_limit="slow")
def slow(n: int) -> int:
    calls.append(time.monotonic())
    return n


@fl.workflow(name="rl_slow")
def rl_slow() -> int:
    return slow(1) + slow(2)


def test_a_run_cancelled_while_its_step_waits_stops_without_calling(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger, fl.Ledger(db_url) as other:
        ledger.set_rate_limit("slow", 1, per=timedelta(minutes=1))
        calls.clear()
        handle = ledger.start(rl_slow)
        # The second call begins, reserves a start a minute away, and sleeps.
        deadline = time.monotonic() + 30
        while not _begun(other, handle.id, 2):
            assert time.monotonic() < deadline, "the second step never began"
            time.sleep(0.05)
        assert other.cancel(handle.id)
        started = time.monotonic()
        with pytest.raises(fl.RunCancelled):
            handle.result(timeout=15)
        assert time.monotonic() - started < 10  # noticed between 2 s slices
        assert len(calls) == 1  # the waiting step never called


def _begun(ledger: fl.Ledger, run_id: str, position: int) -> bool:
    try:
        return ledger.step(run_id, position).status is fl.StepStatus.RUNNING
    except fl.StepNotFound:
        return False


def test_a_worker_stopping_during_a_wait_hands_the_run_back_without_calling(
        db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        ledger.set_rate_limit("slow", 1, per=timedelta(minutes=1))
        calls.clear()
        handle = ledger.submit(rl_slow, queue="rl-stop")
        worker = fl.Worker(db_url, queues=["rl-stop"], concurrency=1)
        thread = threading.Thread(target=worker.run,
                                  kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not _begun(ledger, handle.id, 2):
                assert time.monotonic() < deadline, "the second step never began"
                time.sleep(0.05)
            stopped = time.monotonic()
        finally:
            worker.stop()
            thread.join(60)
        assert not thread.is_alive()
        assert time.monotonic() - stopped < 10  # not the minute the limit asked for
        assert len(calls) == 1  # the waiting step never called
        assert ledger.get(handle.id).status is fl.RunStatus.PENDING  # handed back
