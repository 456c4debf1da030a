"""Forks: what a fork reuses (completed and skipped steps, the context as they left it)
and what it runs again (failed steps, everything from the fork point on)."""

from __future__ import annotations

import flowledger as fl

ran: list[str] = []


@fl.step()
def count_up() -> int:
    ran.append("count_up")
    fl.context.set("n", 5)
    return 1


@fl.step()
def read_and_bump() -> int:
    ran.append("read_and_bump")
    seen = int(fl.context.get("n", -1))
    fl.context.set("n", 7)
    return seen


@fl.step()
def report() -> int:
    ran.append("report")
    return int(fl.context.get("n", -1))


@fl.workflow(name="fork_context")
def counting() -> list[int]:
    fl.context.set("body", "set by the workflow body")
    return [count_up(), read_and_bump(), report()]


def test_a_fork_starts_from_the_context_as_it_stood_at_the_fork_point(
        ledger: fl.Ledger) -> None:
    source = ledger.start(counting)
    assert source.result(timeout=30) == [1, 5, 7]
    ran.clear()
    fork = ledger.fork(source.id, from_position=2)
    # step 2 reads the value step 1 left (5), not the default and not step 2's own (7)
    assert fork.result(timeout=30) == [1, 5, 7]
    assert ran == ["read_and_bump", "report"]
    forked = ledger.get(fork.id)
    assert forked.context == {"n": 7, "body": "set by the workflow body"}

    ran.clear()
    late = ledger.fork(source.id, from_position=3)  # after step 2 set n=7
    assert late.result(timeout=30) == [1, 5, 7] and ran == ["report"]
    ran.clear()
    first = ledger.fork(source.id, from_position=1)  # nothing reused: nothing set yet
    assert first.result(timeout=30) == [1, 5, 7]
    assert ran == ["count_up", "read_and_bump", "report"]


attempts = {"flaky": 0}


@fl.step()
def steady(x: int) -> int:
    ran.append("steady")
    return x + 1


@fl.step()
def flaky(x: int) -> int:
    ran.append("flaky")
    attempts["flaky"] += 1
    if attempts["flaky"] == 1:
        raise ValueError("first call fails")
    return x * 10


@fl.workflow(name="fork_caught")
def tolerant(x: int) -> list[int]:
    first = steady(x)
    try:
        second = flaky(first)
    except ValueError:
        second = -1
    return [first, second, steady(second)]


def test_a_fork_runs_again_a_failed_step_before_the_fork_point(ledger: fl.Ledger) -> None:
    """A fork reuses the *results* before the fork point: completed and skipped steps.
    A step that failed there (and was caught by the workflow) runs again, as on resume."""
    attempts["flaky"] = 0
    source = ledger.start(tolerant, 1)
    assert source.result(timeout=30) == [2, -1, 0]
    ran.clear()
    fork = ledger.fork(source.id, from_position=3)
    assert fork.result(timeout=30) == [2, 20, 21]
    assert ran == ["flaky", "steady"]  # step 1 reused; the failed step 2 ran again
    forked = ledger.get(fork.id)
    assert [(s.position, s.status) for s in forked.steps] == [
        (1, fl.StepStatus.COMPLETED), (2, fl.StepStatus.COMPLETED), (3, fl.StepStatus.COMPLETED)]
    # the copied failure stays in the fork's history, followed by the new attempt
    assert [a.outcome for a in forked.steps[1].attempt_history] == ["failed", "completed"]
