"""Run context: committed with the step that set it, restored on resume."""

from __future__ import annotations

import pytest

import flowledger as fl

state = {"fail_second": True}


@fl.step()
def first() -> int:
    fl.context.set("cursor", 10)
    assert fl.context.get("cursor") == 10  # a step sees its own pending value
    return 1


@fl.step()
def second() -> int:
    fl.context.set("cursor", 20)
    fl.context.set("scratch", {"half": "done"})
    if state["fail_second"]:
        raise RuntimeError("second fails after setting context")
    return 2


@fl.workflow(name="ctx_flow")
def flow() -> dict[str, object]:
    fl.context.set("phase", "started")
    first()
    seen = fl.context.get("cursor")
    second()
    return {"seen": seen, "now": fl.context.as_dict()}


def test_values_commit_with_their_step_and_failed_attempts_leave_none(ledger: fl.Ledger) -> None:
    state["fail_second"] = True
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(flow)
    run = ledger.get(info.value.run_id)
    assert run.context == {"phase": "started", "cursor": 10}  # second's values rolled back

    state["fail_second"] = False
    output = ledger.resume(run.id).result(timeout=30)
    assert output == {"seen": 10, "now": {"phase": "started", "cursor": 20,
                                          "scratch": {"half": "done"}}}
    assert ledger.get(run.id).context == output["now"]


def test_context_outside_a_run_and_bad_names() -> None:
    with pytest.raises(fl.NotInRun):
        fl.context.get("x")
    with pytest.raises(fl.NotInRun):
        fl.context.set("x", 1)


def test_bad_names_and_values_are_refused(ledger: fl.Ledger) -> None:
    @fl.workflow(name="ctx_bad")
    def bad() -> None:
        with pytest.raises(fl.ConfigurationError):
            fl.context.set("", 1)
        with pytest.raises(fl.SerializationError):
            fl.context.set("conn", object())

    ledger.run(bad)
