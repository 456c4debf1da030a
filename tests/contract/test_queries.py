"""runs(): filters, keyset pagination, owner scoping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowledger as fl


@fl.step()
def echo(value: int) -> int:
    if value < 0:
        raise ValueError("negative")
    return value


@fl.workflow(name="q_alpha")
def alpha(value: int) -> int:
    return echo(value)


@fl.workflow(name="q_beta")
def beta(value: int) -> int:
    return echo(value)


def _fill(ledger: fl.Ledger) -> dict[str, list[str]]:
    made: dict[str, list[str]] = {"all": []}

    def record(key: str, run_id: str) -> None:
        made["all"].append(run_id)
        made.setdefault(key, []).append(run_id)

    for i in range(6):
        handle = ledger.start(alpha, i, tags=["even"] if i % 2 == 0 else ["odd"],
                              owner="acme" if i < 3 else "globex")
        handle.result(timeout=30)
        record("alpha", handle.id)
    for i in range(3):
        handle = ledger.start(beta, -1 - i, owner="acme")
        with pytest.raises(fl.RunFailed):
            handle.result(timeout=30)
        record("failed", handle.id)
    return made


def test_filters(ledger: fl.Ledger) -> None:
    made = _fill(ledger)
    newest_first = list(reversed(made["all"]))
    assert [r.id for r in ledger.runs(limit=100)] == newest_first
    assert {r.id for r in ledger.runs(workflow="q_alpha", limit=100)} == set(made["alpha"])
    assert {r.id for r in ledger.runs(status="failed")} == set(made["failed"])
    both = ledger.runs(status=["failed", "completed"], limit=100)
    assert {r.id for r in both} == set(made["all"])
    assert {r.id for r in ledger.runs(status="failed", workflow="q_alpha")} == set()
    assert [r.inputs["value"] for r in ledger.runs(tag="even", limit=100)] == [4, 2, 0]
    assert len(ledger.runs(owner="acme", limit=100)) == 6
    assert len(ledger.runs(owner="globex", limit=100)) == 3
    assert ledger.runs(owner="nobody").runs == ()
    failed = ledger.runs(status="failed").runs[0]
    assert failed.error is not None and failed.counts.failed == 1 and failed.steps == ()


def test_since_until(ledger: fl.Ledger) -> None:
    first = ledger.start(alpha, 1)
    first.result(timeout=30)
    cut = datetime.now(UTC)
    second = ledger.start(alpha, 2)
    second.result(timeout=30)
    assert [r.id for r in ledger.runs(since=cut)] == [second.id]
    assert [r.id for r in ledger.runs(until=cut)] == [first.id]
    assert len(ledger.runs(since=timedelta(hours=1))) == 2
    assert ledger.runs(until=datetime.now(UTC) - timedelta(days=1)).runs == ()
    with pytest.raises(fl.ConfigurationError, match="timezone-aware"):
        ledger.runs(since=datetime(2026, 1, 1))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(min_value=1, max_value=10))
def test_pages_cover_every_run_once_in_order(ledger: fl.Ledger, limit: int) -> None:
    existing = [r.id for r in ledger.runs(workflow="q_alpha", limit=1000)]
    if len(existing) < 7:
        for i in range(7 - len(existing)):
            ledger.run(alpha, i)
        existing = [r.id for r in ledger.runs(workflow="q_alpha", limit=1000)]
    seen: list[str] = []
    cursor = None
    while True:
        page = ledger.runs(workflow="q_alpha", limit=limit, cursor=cursor)
        assert len(page) <= limit
        seen += [r.id for r in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == existing
    assert seen == sorted(seen, reverse=True)


def test_bad_query_arguments_are_clear(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.InvalidCursor, match="next_cursor"):
        ledger.runs(cursor="not-a-cursor!")
    with pytest.raises(fl.ConfigurationError, match="unknown status 'done'"):
        ledger.runs(status="done")
    with pytest.raises(fl.ConfigurationError, match="limit"):
        ledger.runs(limit=0)


def test_owner_scoped_ledger_sees_only_its_runs(db_url: str, ledger: fl.Ledger) -> None:
    theirs = ledger.start(alpha, 1, owner="globex")
    theirs.result(timeout=30)
    with fl.Ledger(db_url, owner="acme") as acme:
        mine = acme.start(alpha, 2)
        mine.result(timeout=30)
        assert [r.id for r in acme.runs()] == [mine.id]
        assert acme.runs(owner="globex").runs == ()
        for action in (acme.get, acme.cancel, acme.resume, acme.handle):
            with pytest.raises(fl.RunNotFound):
                action(theirs.id)
        with pytest.raises(fl.ConfigurationError, match="acme"):
            acme.start(alpha, 3, owner="globex")
    assert ledger.get(mine.id).owner == "acme"
