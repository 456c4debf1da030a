"""Bad input gets a clear error and damages nothing already recorded."""

from __future__ import annotations

import pathlib
import socket

import psycopg
import pytest
from sqlalchemy import make_url

import flowledger as fl
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.helpers.proxy import OutageProxy


class Opaque:
    pass


@fl.step()
def good() -> dict[str, int]:
    return {"kept": 1}


@fl.step()
def bad() -> dict[str, object]:
    return {"items": [1, Opaque()]}


@fl.workflow(name="err_unserializable")
def unserializable() -> object:
    good()
    return bad()


def test_unserializable_output_fails_that_step_with_a_clear_error(ledger: fl.Ledger) -> None:
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(unserializable)
    cause = info.value.__cause__
    assert isinstance(cause, fl.SerializationError)
    assert "value['items'][1]" in str(cause) and "Opaque" in str(cause)
    run = ledger.get(info.value.run_id)
    assert run.steps[0].status is fl.StepStatus.COMPLETED
    assert run.steps[0].output == {"kept": 1}
    assert run.steps[1].status is fl.StepStatus.FAILED
    assert run.steps[1].error is not None and "Opaque" in run.steps[1].error.message
    assert run.steps[1].attempts == 1


def test_unserializable_inputs_are_refused_before_a_run_exists(ledger: fl.Ledger) -> None:
    @fl.workflow(name="err_inputs")
    def takes(thing: object) -> None:
        return None

    with pytest.raises(fl.SerializationError, match="inputs of workflow 'err_inputs'"):
        ledger.run(takes, Opaque())
    assert ledger.runs(workflow="err_inputs").runs == ()
    with pytest.raises(fl.ConfigurationError, match="bad arguments"):
        ledger.run(takes, 1, 2)


def test_oversized_output_fails_the_step(db_url: str) -> None:
    @fl.step()
    def huge() -> str:
        return "x" * 5000

    @fl.workflow(name="err_huge")
    def wf() -> str:
        good()
        return huge()

    with fl.Ledger(db_url, max_payload_bytes=1000) as small:
        with pytest.raises(fl.RunFailed) as info:
            small.run(wf)
        assert isinstance(info.value.__cause__, fl.PayloadTooLarge)
        assert "max_payload_bytes" in str(info.value.__cause__)
        run = small.get(info.value.run_id)
        assert [s.status for s in run.steps] == [fl.StepStatus.COMPLETED, fl.StepStatus.FAILED]


@pytest.mark.parametrize("bad_id", ["01a1fc8b-1776-74b9-a611-ce3b2a5aa48e", "nope", ""])
def test_unknown_run_ids(ledger: fl.Ledger, bad_id: str) -> None:
    for action in (ledger.get, ledger.resume, ledger.cancel, ledger.handle):
        with pytest.raises(fl.RunNotFound, match=f"no run with id '{bad_id}'"):
            action(bad_id)
    with pytest.raises(fl.RunNotFound):
        ledger.fork(bad_id, from_position=1)


def test_bad_configuration_is_reported() -> None:
    with pytest.raises(fl.ConfigurationError, match="unsupported database 'mysql'"):
        fl.Ledger("mysql://localhost/x")
    with pytest.raises(fl.ConfigurationError, match="SQLite"):
        fl.Ledger("sqlite://")
    with pytest.raises(fl.ConfigurationError, match="durability"):
        fl.Ledger("sqlite:///x.db", durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigurationError, match="not a @workflow"):
        fl.Ledger.run(None, print)  # type: ignore[arg-type]


def test_unreachable_postgres_is_store_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(fl.StoreUnavailable) as info:
        fl.Ledger(f"postgresql://postgres@127.0.0.1:{port}/x")
    # the URL travels on the error, never in its message (which HTTP and the CLI show)
    assert info.value.database == f"postgresql+psycopg://postgres@127.0.0.1:{port}/x"
    assert "postgres@" not in str(info.value) and "/x" not in str(info.value)


def test_store_going_away_mid_run_is_store_unavailable(tmp_path: object) -> None:
    path = pathlib.Path(str(tmp_path)) / "gone.db"
    ledger = fl.Ledger(f"sqlite:///{path}")

    @fl.step()
    def vanish() -> int:
        ledger.store.backend._hot.close()  # type: ignore[attr-defined]
        return 1

    @fl.workflow(name="err_gone")
    def wf() -> int:
        return vanish()

    # not the workflow's failure: the error surfaces, and the run is not marked failed
    with pytest.raises(fl.StoreUnavailable) as info:
        ledger.run(wf)
    assert str(info.value).startswith("sqlite store: ")
    assert str(path) not in str(info.value) and str(path) in (info.value.database or "")
    ledger.close()
    with fl.Ledger(f"sqlite:///{path}") as again:
        assert again.runs().runs[0].status is fl.RunStatus.RUNNING


def test_postgres_connections_killed_mid_run_are_replaced(pg_database: str) -> None:
    """The server drops every connection during a step (as in a restart): the step's
    writes go through on fresh connections and the run completes."""

    @fl.step()
    def dropping() -> int:
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return 7

    @fl.workflow(name="err_pg_drop")
    def wf() -> int:
        return good()["kept"] + dropping() + good()["kept"]

    with fl.Ledger(pg_database) as ledger:
        assert ledger.run(wf) == 9
        run = ledger.get(ledger.runs(workflow="err_pg_drop").runs[0].id)
        assert run.status is fl.RunStatus.COMPLETED and run.counts.completed == 3


def test_store_outage_mid_run_is_reported_and_resumable(pg_database: str) -> None:
    """PostgreSQL becomes unreachable during a step: a readable StoreUnavailable, the
    committed steps intact, and once it is back the run resumes where it stopped."""


    target = make_url(pg_database)
    proxy = OutageProxy(target.host or "127.0.0.1", target.port or 5432)
    url = target.set(port=proxy.port).render_as_string(hide_password=False)
    calls = {"cut": 0}

    @fl.step()
    def cutting() -> int:
        calls["cut"] += 1
        if calls["cut"] == 1:
            proxy.cut()
        return 7

    @fl.workflow(name="err_outage")
    def wf() -> int:
        return good()["kept"] + cutting()

    try:
        with fl.Ledger(url) as ledger:
            with pytest.raises(fl.StoreUnavailable) as info:
                ledger.run(wf)
            assert str(info.value).startswith("postgresql store: ")
            assert info.value.database == \
                f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{target.database}"
            proxy.restore()
            run = ledger.runs(workflow="err_outage").runs[0]
            assert run.status is fl.RunStatus.RUNNING  # says it never finished
            assert ledger.get(run.id).steps[0].output == {"kept": 1}
            assert ledger.resume(run.id).result(timeout=30) == 8
            assert calls["cut"] == 2  # the in-flight step ran again (at-least-once)
            assert ledger.get(run.id).steps[0].attempts == 1
    finally:
        proxy.close()


def test_a_reader_does_not_create_flowledger_tables_in_an_empty_postgres_database() -> None:
    name = create_pg_database("flowledger_empty")
    try:
        with pytest.raises(fl.DatabaseNotFound, match=f"PostgreSQL database '{name}'"):
            fl.Ledger(pg_url(name), create=False)
        with fl.Ledger(pg_url(name)) as ledger:  # a writer creates them
            assert ledger.runs().runs == ()
        with fl.Ledger(pg_url(name), create=False) as reader:
            assert reader.runs().runs == ()
    finally:
        drop_pg_database(name)
