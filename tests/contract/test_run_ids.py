"""Caller-chosen run ids: run_id= on start, run and submit."""

from __future__ import annotations

import uuid

import pytest

import flowledger as fl


def test_the_same_run_id_twice_is_one_run_executed_once(ledger: fl.Ledger) -> None:
    calls: list[int] = []

    @fl.workflow(name="chosen_id")
    def wf(n: int) -> int:
        calls.append(n)
        return n * 2

    chosen = str(uuid.uuid4())
    first = ledger.start(wf, 4, run_id=chosen)
    assert first.id == chosen and first.created
    assert first.result(timeout=30) == 8
    second = ledger.start(wf, 5, run_id=chosen)  # other inputs: still the same run
    assert second.id == chosen and not second.created
    assert second.result(timeout=30) == 8
    assert ledger.run(wf, 4, run_id=uuid.UUID(chosen)) == 8
    assert calls == [4]
    assert [r.id for r in ledger.runs(workflow="chosen_id").runs] == [chosen]


def test_submit_with_a_run_id_is_idempotent(ledger: fl.Ledger) -> None:
    @fl.workflow(name="chosen_submit")
    def wf() -> None:
        return None

    chosen = str(uuid.uuid4())
    first = ledger.submit(wf, run_id=chosen)
    second = ledger.submit(wf, run_id=chosen)
    assert (first.id, first.created) == (chosen, True)
    assert (second.id, second.created) == (chosen, False)
    assert ledger.get(chosen).status is fl.RunStatus.PENDING
    assert len(ledger.runs(workflow="chosen_submit").runs) == 1
    # A run started in-process with that id finds the queued one.
    assert not ledger.start(wf, run_id=chosen).created


def test_a_run_id_of_another_workflow_or_owner_is_an_error(ledger: fl.Ledger) -> None:
    @fl.workflow(name="id_owner_a")
    def a() -> str:
        return "a"

    @fl.workflow(name="id_owner_b")
    def b() -> str:
        return "b"

    chosen = str(uuid.uuid4())
    assert ledger.run(a, run_id=chosen) == "a"
    with pytest.raises(fl.RunIdConflict, match="already a run of workflow 'id_owner_a'"):
        ledger.start(b, run_id=chosen)
    with pytest.raises(fl.RunIdConflict):
        ledger.submit(b, run_id=chosen)
    with pytest.raises(fl.RunIdConflict, match="another owner") as caught:
        ledger.for_owner("mallory").run(b, run_id=chosen)
    assert "id_owner_a" not in str(caught.value)  # another owner's run is not described
    assert ledger.get(chosen).output == "a"


@pytest.mark.parametrize("bad", ["run-42", "", "0190a6f2", 42])
def test_a_run_id_must_be_a_uuid(ledger: fl.Ledger, bad: object) -> None:
    @fl.workflow(name="id_shape")
    def wf() -> None:
        return None

    with pytest.raises(fl.ConfigurationError, match="run_id must be a UUID"):
        ledger.start(wf, run_id=bad)  # type: ignore[arg-type]
    assert not ledger.runs(workflow="id_shape").runs
