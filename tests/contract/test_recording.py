"""What a run and its steps record, on every backend."""

from __future__ import annotations

import ast
import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pydantic
import pytest

import flowledger as fl

calls: dict[str, int] = {}


@dataclass
class Issue:
    number: int
    title: str
    opened: date


class Label(pydantic.BaseModel):
    name: str
    confidence: Decimal


@fl.step(retries=3, backoff=0.5, timeout=30.0)
def fetch_issue(number: int) -> Issue:
    calls["fetch"] = calls.get("fetch", 0) + 1
    return Issue(number, f"issue {number}", date(2026, 11, 1))


@fl.step()
def classify(issue: Issue) -> Label:
    assert isinstance(issue, Issue)
    return Label(name="bug" if issue.number % 2 else "feature", confidence=Decimal("0.75"))


@fl.workflow(name="rec_triage", version="3")
def triage(number: int, *, urgent: bool = False) -> dict[str, object]:
    issue = fetch_issue(number)
    label = classify(issue)
    return {"number": number, "label": label.name, "urgent": urgent}


def test_run_returns_output_and_records_run_and_steps(ledger: fl.Ledger) -> None:
    before = datetime.now(UTC)
    output = ledger.run(triage, 41, tags=["nightly", "ops"])
    assert output == {"number": 41, "label": "bug", "urgent": False}

    page = ledger.runs(workflow="rec_triage")
    assert len(page) == 1
    run = ledger.get(page.runs[0].id)
    assert uuid.UUID(run.id).version == 7
    assert (run.workflow, run.version) == ("rec_triage", "3")
    assert run.entrypoint == "tests.contract.test_recording:triage"
    assert run.owner == "default"
    assert run.tags == ("nightly", "ops")
    assert run.status is fl.RunStatus.COMPLETED
    assert run.inputs == {"number": 41, "urgent": False}
    assert run.output == output
    assert run.error is None
    assert run.started_at is not None and run.completed_at is not None
    assert before <= run.created_at <= run.started_at <= run.completed_at
    assert run.duration == run.completed_at - run.started_at
    assert run.counts == fl.StepCounts(total=2, completed=2, failed=0, skipped=0)
    assert run.recovery_attempts == 0 and run.parent_id is None and run.forked_from is None

    assert [(s.position, s.name, s.status, s.attempts) for s in run.steps] == [
        (1, "fetch_issue", fl.StepStatus.COMPLETED, 1),
        (2, "classify", fl.StepStatus.COMPLETED, 1),
    ]
    first, second = run.steps
    assert first.input == {"number": 41}
    assert first.output == {"number": 41, "title": "issue 41", "opened": "2026-11-01"}
    assert second.output == {"name": "bug", "confidence": "0.75"}
    assert first.started_at is not None and first.completed_at is not None
    assert first.completed_at <= second.started_at  # type: ignore[operator]
    assert first.idempotency_key == f"{run.id}:1"


def test_start_commits_the_run_before_its_first_step(db_url: str, ledger: fl.Ledger) -> None:
    seen: dict[str, object] = {}

    @fl.step()
    def look() -> str:
        # A separate Ledger has its own connections: it sees only committed data.
        with fl.Ledger(db_url) as other:
            run = other.get(fl.current_run_id())
            seen["status"] = run.status
            seen["steps"] = [(s.position, s.status) for s in run.steps]
        return "looked"

    @fl.workflow(name="rec_lookahead")
    def lookahead() -> str:
        return look()

    handle = ledger.start(lookahead)
    assert handle.result(timeout=30) == "looked"
    assert seen == {"status": fl.RunStatus.RUNNING, "steps": [(1, fl.StepStatus.RUNNING)]}
    assert handle.status() is fl.RunStatus.COMPLETED


def test_typed_outputs_are_restored_on_replay(ledger: fl.Ledger) -> None:
    stamp = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
    token = uuid.UUID("01a1fc8b-1776-74b9-a611-ce3b2a5aa48e")
    attempts = {"n": 0}

    @fl.step()
    def produce() -> tuple[datetime, uuid.UUID, Decimal, Issue, bytes]:
        return stamp, token, Decimal("1.10"), Issue(7, "t", date(2026, 1, 2)), b"\x00\xff"

    @fl.step()
    def unstable() -> str:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("first run fails")
        return "ok"

    @fl.workflow(name="rec_typed")
    def typed() -> str:
        when, ident, amount, issue, raw = produce()
        assert (when, ident, amount, raw) == (stamp, token, Decimal("1.10"), b"\x00\xff")
        assert issue == Issue(7, "t", date(2026, 1, 2))
        return unstable()

    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(typed)
    # The resume replays produce() from the store; the workflow's asserts check the types.
    assert ledger.resume(failed.value.run_id).result(timeout=30) == "ok"


def test_skip_step_records_skipped_and_returns_value(ledger: fl.Ledger) -> None:
    @fl.step()
    def maybe(n: int) -> list[int]:
        if n == 0:
            raise fl.SkipStep("nothing to do", value=[])
        return [n]

    @fl.workflow(name="rec_skip")
    def skipping() -> list[int]:
        return maybe(0) + maybe(2)

    assert ledger.run(skipping) == [2]
    run = ledger.get(ledger.runs(workflow="rec_skip").runs[0].id)
    assert [s.status for s in run.steps] == [fl.StepStatus.SKIPPED, fl.StepStatus.COMPLETED]
    assert run.steps[0].error is not None and run.steps[0].error.message == "nothing to do"
    assert run.counts == fl.StepCounts(total=2, completed=1, failed=0, skipped=1)


def test_current_step_exposes_position_attempt_and_key(ledger: fl.Ledger) -> None:
    @fl.step()
    def whoami() -> dict[str, object]:
        info = fl.current_step()
        return {"position": info.position, "attempt": info.attempt,
                "key": info.idempotency_key, "name": info.name}

    @fl.workflow(name="rec_whoami")
    def who() -> list[dict[str, object]]:
        return [whoami(), whoami()]

    handle = ledger.start(who)
    first, second = handle.result(timeout=30)
    assert first == {"position": 1, "attempt": 1, "key": f"{handle.id}:1", "name": "whoami"}
    assert second["position"] == 2 and second["key"] == f"{handle.id}:2"
    with pytest.raises(fl.NotInRun):
        fl.current_step()


def test_steps_called_outside_a_run_or_inside_a_step_are_plain_calls(ledger: fl.Ledger) -> None:
    @fl.step()
    def inner(x: int) -> int:
        return x + 1

    @fl.step()
    def outer(x: int) -> int:
        return inner(x) * 10

    @fl.workflow(name="rec_nested")
    def nested() -> int:
        return outer(1)

    assert outer(1) == 20  # no run: plain Python
    assert ledger.run(nested) == 20
    run = ledger.get(ledger.runs(workflow="rec_nested").runs[0].id)
    assert [s.name for s in run.steps] == ["outer"]


def test_child_workflow_is_a_linked_run(ledger: fl.Ledger) -> None:
    @fl.workflow(name="rec_parent")
    def parent(n: int) -> dict[str, object]:
        first = triage(n)
        return {"child": first, "again": triage(n + 1)}

    handle = ledger.start(parent, 10, owner="team-a")
    output = handle.result(timeout=30)
    assert output["child"] == {"number": 10, "label": "feature", "urgent": False}
    run = ledger.get(handle.id)
    assert [(s.position, s.name) for s in run.steps] == [(1, "rec_triage"), (2, "rec_triage")]
    children = ledger.runs(parent=handle.id).runs
    assert {c.id for c in children} == {s.child_run_id for s in run.steps}
    for child in children:
        assert child.parent_id == handle.id
        assert child.owner == "team-a"
        assert child.status is fl.RunStatus.COMPLETED
        assert ledger.get(child.id).counts.completed == 2


def test_async_child_workflows(ledger: fl.Ledger) -> None:
    @fl.step()
    async def double(x: int) -> int:
        return 2 * x

    @fl.workflow(name="rec_async_child")
    async def child(x: int) -> int:
        return await double(x)

    @fl.workflow(name="rec_async_parent")
    async def parent(x: int) -> list[int]:
        return list(await asyncio.gather(child(x), child(x + 1)))

    handle = ledger.start(parent, 5)
    assert handle.result(timeout=30) == [10, 12]
    kids = ledger.runs(parent=handle.id).runs
    assert sorted(k.output for k in kids) == [10, 12]
    steps = ledger.get(handle.id).steps
    assert [(s.position, s.input) for s in steps] == [(1, {"x": 5}), (2, {"x": 6})]


class ReprSerializer:
    """A serializer of our own: stores Python literals, to show the seam works."""

    name = "pyrepr"

    def dumps(self, value: object) -> str:
        return repr(value)

    def loads(self, text: str, type_hint: object = None) -> object:
        return ast.literal_eval(text)


def test_pluggable_serializer(db_url: str) -> None:
    @fl.step()
    def make() -> set[complex]:
        return {1j, 2 + 0j}

    @fl.workflow(name="rec_custom_ser")
    def wf() -> set[complex]:
        return make()

    with fl.Ledger(db_url, serializer=ReprSerializer()) as custom:
        assert custom.run(wf) == {1j, 2 + 0j}
        run = custom.get(custom.runs(workflow="rec_custom_ser").runs[0].id)
        assert run.output == {1j, 2 + 0j}
    with fl.Ledger(db_url) as default:  # another serializer shows the stored text as is
        assert default.get(run.id).output == repr({1j, 2 + 0j})
