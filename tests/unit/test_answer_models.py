"""The HTTP answer models (http/schemas.py) restate the records' ``to_dict()`` forms for
OpenAPI; these tests fail when the two drift apart, in either direction: a key the API
sends that its schema does not declare, or a declared field the API never sends.

Every answer is built from real records (a real SQLite ledger), exactly as the routes
build them.
"""

from __future__ import annotations

import contextlib
import logging
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import flowledger as fl
from flowledger.http import schemas
from flowledger.http.present import Redactor, run_full, step_full
from flowledger.http.routes_workflows import parameters
from flowledger.workflow import registered


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The answer models an annotation holds (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    if typing.get_origin(annotation) in (list, tuple, typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found.extend(_models_in(argument))
    return found


def assert_matches(model: type[BaseModel], data: Any, where: str = "answer") -> None:
    """``data`` has exactly ``model``'s fields, recursively into nested answer models."""
    assert isinstance(data, dict), f"{where}: expected an object, got {type(data).__name__}"
    declared = set(model.model_fields)
    sent = set(data)
    assert sent <= declared, f"{where}: sent but not in {model.__name__}: {sent - declared}"
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    missing = required - sent
    assert not missing, f"{where}: {model.__name__} declares fields never sent: {missing}"
    for name, info in model.model_fields.items():
        nested = _models_in(info.annotation)
        value = data.get(name)
        if not nested or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            assert_matches(nested[0], item, f"{where}.{name}")
    model.model_validate(data)  # and the values have the declared types


@fl.step(retries=1, backoff=0)
def flaky(state: dict[str, int]) -> int:
    state["calls"] += 1
    logging.getLogger("answers").warning("attempt %d", state["calls"])
    if state["calls"] == 1:
        raise ValueError("first attempt fails")
    fl.record_usage("gpt-4o-mini", input_tokens=120, output_tokens=30)
    return state["calls"]


@fl.step()
def broken() -> None:
    raise RuntimeError("always")


@fl.workflow(name="answers-child")
def child(n: int) -> int:
    return n * 2


@fl.workflow(name="answers-parent")
def parent(n: int, label: str = "x", *extra: int) -> int:
    value = flaky({"calls": 0})
    fl.context.set("label", label)
    fl.artifacts.save("notes.txt", b"hello", media_type="text/plain")
    doubled = child(n)
    with contextlib.suppress(RuntimeError):  # a caught step failure is still recorded
        broken()
    return value + doubled


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[fl.Ledger, fl.Run]:
    ledger = fl.Ledger(f"sqlite:///{tmp_path / 'answers.db'}",
                       artifacts=str(tmp_path / "artifacts"))
    handle = ledger.start(parent, 3)
    handle.result()
    return ledger, ledger.get(handle.id)


def test_a_run_answer_has_exactly_the_declared_fields(
        recorded: tuple[fl.Ledger, fl.Run]) -> None:
    ledger, run = recorded
    assert any(step.attempt_history for step in run.steps)
    assert any(step.usage for step in run.steps)
    assert any(step.error for step in run.steps)
    assert run.artifacts and run.artifacts == tuple(ledger.artifacts(run).list())
    assert_matches(schemas.RunOut, run_full(run, Redactor(["label"])))
    for step in run.steps:
        assert_matches(schemas.StepOut, step_full(step, Redactor([])), f"step {step.position}")
    page = ledger.summaries()
    assert len(page.runs) == 2 and any(s["own_usage"]["calls"] for s in page.runs)
    assert_matches(schemas.RunPageOut, {"runs": page.runs, "next_cursor": page.next_cursor})
    ledger.close()


def test_a_failed_run_answer_has_exactly_the_declared_fields(tmp_path: Path) -> None:
    @fl.workflow(name="answers-failing")
    def failing() -> None:
        broken()

    with fl.Ledger(f"sqlite:///{tmp_path / 'failed.db'}") as ledger:
        handle = ledger.start(failing)
        with pytest.raises(fl.RunFailed):
            handle.result()
        run = ledger.get(handle.id)
        assert run.error is not None
        assert_matches(schemas.RunOut, run_full(run, Redactor([])))
        listed = ledger.summaries().runs[0]
        assert listed["error"]["type"] == "builtins.RuntimeError"
        assert_matches(schemas.RunSummaryOut, listed)


def test_reports_events_and_workflows_answers_match_their_models(
        recorded: tuple[fl.Ledger, fl.Run]) -> None:
    ledger, run = recorded
    assert_matches(schemas.StatsOut, ledger.stats().to_dict())
    groups = ledger.usage(group_by="model")
    assert groups
    for group in groups:
        assert_matches(schemas.UsageGroupOut, group.to_dict(), f"usage {group.key}")
    events = ledger.events(run.id).events
    assert {"step.retrying", "step.failed", "run.completed"} <= {e.type for e in events}
    for event in events:
        assert_matches(schemas.EventOut, event.to_dict(), f"event {event.type}")
    logs = ledger.logs(run.id)
    assert [(a.position, a.attempt) for a in logs] == [(1, 1), (1, 2)]
    for attempt in logs:
        assert_matches(schemas.AttemptLogsOut, attempt.to_dict(), f"logs {attempt.attempt}")
    definition = registered("answers-parent")
    assert definition is not None
    assert_matches(schemas.WorkflowOut, {"name": "answers-parent",
                                         "version": definition.version,
                                         "parameters": parameters(definition)})
    ledger.close()


def test_the_drift_check_catches_an_extra_and_a_missing_field() -> None:
    good = {"type": "ValueError", "message": "m", "traceback": ""}
    assert_matches(schemas.ErrorInfoOut, good)
    with pytest.raises(AssertionError, match="sent but not in"):
        assert_matches(schemas.ErrorInfoOut, {**good, "extra": 1})
    with pytest.raises(AssertionError, match="never sent"):
        assert_matches(schemas.ErrorInfoOut, {"type": "ValueError", "message": "m"})


def test_webhook_answers_match_their_models(tmp_path: Path) -> None:
    from flowledger.webhook_dispatch import WebhookDispatcher  # noqa: PLC0415

    with fl.Ledger(f"sqlite:///{tmp_path / 'hooks.db'}") as ledger:
        hook = ledger.add_webhook("http://127.0.0.1:9/hooks", allow_private=True)
        assert_matches(schemas.WebhookOut, hook.to_dict())
        assert_matches(schemas.WebhookOut, ledger.webhook(hook.id).to_dict())
        handle = ledger.start(parent, 3)
        handle.result()
        WebhookDispatcher(ledger, allow_private=True, max_attempts=1,
                          timeout=5).run_once()  # nothing listens on port 9
        delivery = ledger.webhook_deliveries(status="failed")[0]
        assert_matches(schemas.WebhookDeliveryOut, delivery.to_dict())
        (attempt,) = ledger.webhook_attempts(delivery.id)
        assert attempt.error is not None
        assert_matches(schemas.WebhookAttemptOut, attempt.to_dict())
