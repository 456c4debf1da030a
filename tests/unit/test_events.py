"""Event ids as cursors: however a run's steps interleave and wherever a client
disconnects, reading on from the last id received delivers every transition once."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowledger as fl
from flowledger.errors import InvalidCursor
from flowledger.events import derive_events
from flowledger.store import AttemptRow, RunProgress, StepProgress

RUN_ID = uuid.UUID(int=7)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[RunProgress], set[tuple[str, int, int]]]:
    """Snapshots of one run as its steps (some in parallel, some retried) progress, and
    the step transitions that happened."""
    count = draw(st.integers(1, 5))
    plans = {position: ["failed"] * draw(st.integers(0, 2)) + ["completed"]
             for position in range(1, count + 1)}
    # each step's transitions in order; a global interleaving of them (parallel steps)
    pending = {p: [(p, attempt, outcome) for attempt, outcome in enumerate(plan, 1)]
               for p, plan in plans.items()}
    order: list[tuple[int, int, str, bool]] = []
    while any(pending.values()):
        position = draw(st.sampled_from(sorted(p for p, left in pending.items() if left)))
        _, attempt, outcome = pending[position].pop(0)
        order += [(position, attempt, outcome, False), (position, attempt, outcome, True)]
    state: dict[int, StepProgress] = {}
    tried: dict[tuple[int, int], AttemptRow] = {}
    happened: set[tuple[str, int, int]] = set()
    clock = 100
    snapshots = [RunProgress(RUN_ID, "running", clock, None, None, None, ())]
    for position, attempt, outcome, done in order:
        clock += 1
        if not done:
            state[position] = StepProgress(position, f"s{position}", "running", attempt, clock,
                                           None, None)
            happened.add(("step.started", position, attempt))
        elif outcome == "completed":
            begun = state[position].started_at
            state[position] = StepProgress(position, f"s{position}", "completed", attempt,
                                           begun, clock, None)
            happened.add(("step.completed", position, attempt))
        else:
            # a failed attempt is retried in process (the step stays running), or fails
            # the step, which a resume then runs again
            begun = state[position].started_at
            retried = draw(st.booleans())
            tried[(position, attempt)] = AttemptRow(RUN_ID, position, attempt, "failed",
                                                    begun, clock, '{"type": "E"}',
                                                    clock + 1 if retried else None)
            if not retried:
                state[position] = StepProgress(position, f"s{position}", "failed", attempt,
                                               begun, clock, None, '{"type": "E"}')
            happened.add(("step.retrying" if retried else "step.failed", position, attempt))
        snapshots.append(RunProgress(RUN_ID, "running", 100, None, None, None,
                                     tuple(state[p] for p in sorted(state)),
                                     tuple(tried[k] for k in sorted(tried))))
    final = snapshots[-1]
    snapshots.append(RunProgress(RUN_ID, "completed", 100, clock + 1, None, None,
                                 final.steps, final.attempts))
    return snapshots, happened


@settings(max_examples=300, deadline=None)
@given(case=histories(), data=st.data())
def test_reading_on_from_any_received_id_delivers_each_transition_once(
        case: tuple[list[RunProgress], set[tuple[str, int, int]]],
        data: st.DataObject) -> None:
    history, happened = case
    received: list[tuple[str, int | None, int | None]] = []
    last_id: str | None = None
    for snapshot in history:
        if not data.draw(st.booleans()):
            continue  # the client was not reading while this happened
        batch = derive_events(snapshot, last_id)
        keep = data.draw(st.integers(0, len(batch.events)))  # disconnect mid-batch
        for event in batch.events[:keep]:
            received.append((event.type, event.position, event.attempt))
            last_id = event.id
    while True:  # reconnect to the finished run until its stream ends
        batch = derive_events(history[-1], last_id)
        received += [(e.type, e.position, e.attempt) for e in batch.events]
        last_id = batch.cursor
        if batch.finished:
            break
    assert len(received) == len(set(received)), received
    assert {r for r in received if r[0].startswith("step.")} == happened
    for position in {p for _, p, _ in happened}:  # each step's transitions in their order
        mine = [(t, a or 0) for t, p, a in received if p == position]
        assert [a for _, a in mine] == sorted(a for _, a in mine)
        assert all(t == "step.started" for t, _ in mine[::2]), mine
    assert received[0] == ("run.started", None, None)
    assert received[-1] == ("run.completed", None, None)
    assert [r for r in received if r[0].startswith("run.")] == [received[0], received[-1]]
    fresh = derive_events(history[-1], None)
    assert fresh.finished and derive_events(history[-1], fresh.cursor).events == ()
    assert {(e.type, e.position, e.attempt) for e in fresh.events
            if e.type.startswith("step.")} == happened


def test_a_retried_attempt_is_told_with_its_error() -> None:
    running = StepProgress(1, "a", "running", 1, 10, None, None)
    failed = AttemptRow(RUN_ID, 1, 1, "failed", 10, 11,
                        '{"type": "x.Boom", "message": "no luck", "traceback": "..."}', 12)
    batch = derive_events(RunProgress(RUN_ID, "running", 5, None, None, None, (running,),
                                      (failed,)), None)
    retrying = batch.events[-1]
    assert (retrying.type, retrying.position, retrying.attempt) == ("step.retrying", 1, 1)
    assert retrying.error == fl.ErrorInfo("x.Boom", "no luck", "...")
    assert retrying.to_dict()["error"] == {"type": "x.Boom", "message": "no luck"}


def test_a_resumed_run_reports_the_resume_and_the_rerun_step() -> None:
    step1 = StepProgress(1, "a", "completed", 1, 10, 11, None)
    failed = RunProgress(RUN_ID, "failed", 5, 12, None, None,
                         (step1, StepProgress(2, "b", "failed", 1, 11, 12, None)))
    first = derive_events(failed, None)
    assert [e.type for e in first.events][-2:] == ["step.failed", "run.failed"]
    assert first.finished
    resumed = RunProgress(RUN_ID, "completed", 5, 30, 20, 2,
                          (step1, StepProgress(2, "b", "completed", 2, 21, 22, None)))
    later = derive_events(resumed, first.cursor)
    assert [(e.type, e.position, e.attempt) for e in later.events] == [
        ("run.resumed", 2, None), ("step.started", 2, 2), ("step.completed", 2, 2),
        ("run.completed", None, None)]
    requeued = RunProgress(RUN_ID, "pending", 5, None, None, 2, failed.steps)
    waiting = derive_events(requeued, first.cursor)
    assert waiting.events == () and not waiting.finished


@pytest.mark.parametrize("bad", ["x", "v2.0.0.0.", "v1.0.4.0.", "v1.0.1.0.1-1-7",
                                 "v1.zz!.1.0.", "v1.0.1.0.1-1"])
def test_malformed_event_ids_are_refused(bad: str) -> None:
    progress = RunProgress(RUN_ID, "running", 1, None, None, None, ())
    with pytest.raises(InvalidCursor, match="event id"):
        derive_events(progress, bad)
