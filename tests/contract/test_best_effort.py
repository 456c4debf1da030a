"""persistence="best_effort": a store outage never stops a run, and nothing is lost."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

import flowledger as fl
from flowledger import ids
from tests.helpers.proxy import OutageProxy

control: dict[str, Any] = {"cut_at": 0, "proxy": None}


@fl.step()
def work(i: int) -> dict[str, int]:
    if i == control["cut_at"] and control["proxy"] is not None:
        control["proxy"].cut()  # the database goes away while this step runs
    fl.record_usage("gpt-4o", input_tokens=100 * i, output_tokens=10 * i, provider="openai")
    fl.context.set("last", i)
    if i == 3:
        fl.artifacts.save("third.txt", f"made by step {i}")
    return {"i": i, "square": i * i}


@fl.workflow(name="spool_flow")
def flow(n: int) -> int:
    fl.context.set("started", True)
    return sum(work(i)["square"] for i in range(1, n + 1))


@pytest.fixture
def proxy(pg_database: str) -> Iterator[OutageProxy]:
    target = make_url(pg_database)
    outage = OutageProxy(target.host or "127.0.0.1", target.port or 5432)
    control["proxy"] = outage
    yield outage
    control["proxy"] = None
    control["cut_at"] = 0
    outage.close()


def _through(pg_database: str, proxy: OutageProxy) -> str:
    return make_url(pg_database).set(port=proxy.port).render_as_string(hide_password=False)


def snapshot(ledger: fl.Ledger, run_id: str) -> dict[str, Any]:
    """The recorded facts of a run, without ids, times and tokens that differ per run."""
    run = ledger.get(run_id)
    return {
        "run": (run.workflow, run.status, run.inputs, run.output, run.error, run.counts),
        "steps": [(s.position, s.name, s.status, s.attempts, s.input, s.output, s.error,
                   [(u.model, u.input_tokens, u.output_tokens, u.cost_usd) for u in s.usage])
                  for s in run.steps],
        "context": run.context,
        "artifacts": [(a.key, a.digest, a.size, a.position)
                      for a in ledger.artifacts(run_id).list()],
    }


@pytest.mark.parametrize("cut_at", [2, 0])
def test_outage_mid_run_or_from_the_start(pg_database: str, proxy: OutageProxy,
                                          tmp_path: Path, cut_at: int) -> None:
    spool = tmp_path / "spool"
    artifacts = str(tmp_path / "artifacts")
    with fl.Ledger(pg_database, artifacts=artifacts) as reference:
        expected_id = reference.start(flow, 5).id
        reference.handle(expected_id).result(timeout=30)
        expected = snapshot(reference, expected_id)

    with fl.Ledger(_through(pg_database, proxy), persistence="best_effort",
                   spool_dir=str(spool), artifacts=artifacts) as ledger:
        if cut_at == 0:
            proxy.cut()  # unreachable before the run even starts
        control["cut_at"] = cut_at
        handle = ledger.start(flow, 5)
        assert handle.result(timeout=60) == 1 + 4 + 9 + 16 + 25  # the run went on
        spooled = list(spool.rglob("*.jsonl"))
        assert len(spooled) == 1 and spooled[0].read_text().count("\n") > 5
        with pytest.raises(fl.StoreUnavailable):
            ledger.flush_spool()  # still down: says so, keeps the spool

        proxy.restore()
        control["cut_at"] = 0
        replayed = ledger.flush_spool()
        assert replayed > 5 and list(spool.rglob("*.jsonl")) == []
        assert ledger.flush_spool() == 0
        assert snapshot(ledger, handle.id) == expected

        again = ledger.start(flow, 5)  # back to direct writes
        again.result(timeout=30)
        assert snapshot(ledger, again.id) == expected


def _orphaned_spool(pg_database: str, proxy: OutageProxy, tmp_path: Path) -> str:
    """Run flow(2) through an outage, then leave its spool as a dead process would."""
    spool = tmp_path / "spool"
    with fl.Ledger(_through(pg_database, proxy), persistence="best_effort",
                   spool_dir=str(spool), artifacts=str(tmp_path / "a")) as ledger:
        proxy.cut()
        handle = ledger.start(flow, 2)
        assert handle.result(timeout=60) == 5
    [left] = spool.rglob("*.jsonl")
    left.rename(left.parent / f"{ids.hostname()}-999999-0.jsonl")  # a pid that is not alive
    return handle.id


def test_replaying_a_spool_twice_writes_nothing_twice(pg_database: str, proxy: OutageProxy,
                                                      tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    with fl.Ledger(_through(pg_database, proxy), persistence="best_effort",
                   spool_dir=str(spool), artifacts=str(tmp_path / "a")) as ledger:
        proxy.cut()
        handle = ledger.start(flow, 3)
        handle.result(timeout=60)
        [path] = spool.rglob("*.jsonl")
        saved = path.read_text()
        proxy.restore()
        ledger.flush_spool()
        first = snapshot(ledger, handle.id)
        path.write_text(saved)  # as if the first flush had died before truncating
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="flowledger"):
            ledger.flush_spool()
        # nothing was lost, so nothing is reported as lost
        assert not [r for r in caplog.records if "rejected" in r.getMessage()]
        assert [r.levelno for r in caplog.records if "already applied" in r.getMessage()]
        assert all(r.levelno == logging.DEBUG for r in caplog.records
                   if "already applied" in r.getMessage())
        assert snapshot(ledger, handle.id) == first
        assert len(ledger.get(handle.id).steps[0].usage) == 1


def test_required_mode_fails_loudly(pg_database: str, proxy: OutageProxy,
                                    tmp_path: Path) -> None:
    with fl.Ledger(_through(pg_database, proxy), artifacts=str(tmp_path / "a")) as ledger:
        proxy.cut()
        with pytest.raises(fl.StoreUnavailable):
            ledger.start(flow, 2)
        assert ledger.flush_spool() == 0
    with pytest.raises(fl.ConfigurationError, match="persistence"):
        fl.Ledger(pg_database, persistence="sometimes")  # type: ignore[arg-type]


def test_spools_of_dead_processes_are_flushed_by_the_next_ledger(
        pg_database: str, proxy: OutageProxy, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    run_id = _orphaned_spool(pg_database, proxy, tmp_path)
    proxy.restore()
    with fl.Ledger(_through(pg_database, proxy), persistence="best_effort",
                   spool_dir=str(spool), artifacts=str(tmp_path / "a")) as later:  # flushes
        assert list(spool.rglob("*.jsonl")) == []
        run = later.get(run_id)
        assert run.status is fl.RunStatus.COMPLETED and run.output == 5
        assert run.counts.completed == 2


def test_a_spool_is_only_written_back_to_its_own_database(
        pg_database: str, proxy: OutageProxy, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    run_id = _orphaned_spool(pg_database, proxy, tmp_path)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with fl.Ledger(other, persistence="best_effort", spool_dir=str(spool),
                   artifacts=str(tmp_path / "a")) as elsewhere, pytest.raises(fl.RunNotFound):
        elsewhere.get(run_id)
    assert len(list(spool.rglob("*.jsonl"))) == 1  # still waiting for its own database
