"""Bad input gets a clear error and damages nothing already recorded."""

from __future__ import annotations

import socket

import pytest

import flowledger as fl


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
    with pytest.raises(fl.StoreUnavailable, match=f"127.0.0.1:{port}"):
        fl.Ledger(f"postgresql://postgres@127.0.0.1:{port}/x")


def test_store_going_away_mid_run_is_store_unavailable(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "gone.db"
    ledger = fl.Ledger(f"sqlite:///{path}")

    @fl.step()
    def vanish() -> int:
        ledger.store.backend._hot.close()  # type: ignore[attr-defined]
        return 1

    @fl.workflow(name="err_gone")
    def wf() -> int:
        return vanish()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert isinstance(info.value.__cause__, fl.StoreUnavailable)
    assert "sqlite store at" in str(info.value.__cause__)
    ledger.close()
