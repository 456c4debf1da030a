"""Durable sleeps and event waits, called from a workflow body: ``fl.sleep`` and
``fl.wait_for_event`` (and their ``_async`` twins for async workflows).

Each is a step: a resume replays it. A sleep records when it ends, so a run that crashed
mid-sleep sleeps only what is left; a wait records the event's payload as its output.
A run a worker executes (it has a queue) that would block longer than the worker's
``suspend_after`` lets go of its slot and lease instead: status ``waiting``, with when it
wakes and what it waits for; a worker claims it again when it is due or the event is
sent. A run executed in-process (``ledger.run``/``start``) blocks its thread.
"""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import ids, validation
from .blocking import Blocking, drive, drive_async
from .encryption import error_data, readable
from .errors import (
    ConfigurationError,
    DeadlineExceeded,
    SuspendedSignal,
    WaitTimeout,
    WorkerStopping,
)
from .runcontext import current_execution, step_of
from .serialization import NO_HINT
from .stepcall import StepCall, interruption
from .workflow import RetryPolicy

if TYPE_CHECKING:
    from .executor import Execution
    from .store import StepRow

T = TypeVar("T")
SLEEP_STEP = "sleep"
WAIT_STEP_PREFIX = "wait_for_event:"  # + the event's name
_NO_RETRY = RetryPolicy()
# An in-process wait looks for its event this often (growing to the longer interval),
# and a blocked sleep or wait checks every second that its run was not cancelled,
# paused or taken over.
_POLL_FIRST, _POLL_LONGEST, _CHECK_EVERY = 0.01, 0.25, 1.0
# What the generators below ask their driver for: block this many seconds, then resume.


def sleep(duration: float | timedelta) -> None:
    """Sleep durably for ``duration`` (seconds or a timedelta), recorded as a step.

    A resume after a crash sleeps only what is left; a run a worker executes that sleeps
    longer than the worker's ``suspend_after`` holds no slot meanwhile.

    Example::

        @fl.workflow()
        def reminder(user: str) -> None:
            send_welcome(user)
            fl.sleep(timedelta(days=3))
            send_tips(user)
    """
    drive(_sleeping(_body("fl.sleep()"), _seconds(duration, "fl.sleep() duration")))


async def sleep_async(duration: float | timedelta) -> None:
    """``fl.sleep`` for async workflows. Example: ``await fl.sleep_async(60)``"""
    await drive_async(_sleeping(_body("fl.sleep_async()"),
                                 _seconds(duration, "fl.sleep_async() duration")))


@overload
def wait_for_event(name: str, timeout: float | timedelta | None = None,
                   model: None = None) -> Any: ...
@overload
def wait_for_event(name: str, timeout: float | timedelta | None = None, *,
                   model: type[T]) -> T: ...
@overload
def wait_for_event(name: str, timeout: float | timedelta | None,
                   model: type[T]) -> T: ...
def wait_for_event(name: str, timeout: float | timedelta | None = None,
                   model: type[Any] | None = None) -> Any:
    """Wait durably until event ``name`` is sent to this run (``Ledger.send_event``) and
    return its payload (validated as ``model`` when given). Raises ``fl.WaitTimeout``
    after ``timeout``. Events sent before the wait is reached are kept and delivered
    here; each event is consumed by one wait. The payload is the step's recorded output,
    so a resume returns it without waiting.

    Example::

        class Approval(BaseModel):
            approved: bool
            by: str
            note: str = ""

        decision = fl.wait_for_event("approve", timeout=timedelta(days=2), model=Approval)
    """
    return drive(_waiting(_body("fl.wait_for_event()"), name, timeout, model))


async def wait_for_event_async(name: str, timeout: float | timedelta | None = None,
                               model: type[Any] | None = None) -> Any:
    """``fl.wait_for_event`` for async workflows.

    Example: ``payload = await fl.wait_for_event_async("approve")``
    """
    return await drive_async(_waiting(_body("fl.wait_for_event_async()"), name, timeout,
                                       model))


# -- what they do -------------------------------------------------------------------
def _sleeping(execution: Execution, seconds: float) -> Blocking[None]:
    call = StepCall(execution, SLEEP_STEP, execution.allocate(), _NO_RETRY, None, NO_HINT,
                    lambda: text)
    hit, _ = call.replay()
    if hit:
        return None
    wake_at = _recorded(call.recorded, "wake_at")
    if wake_at is None:
        wake_at = ids.now_us() + int(seconds * 1_000_000)
    text = json.dumps({"seconds": seconds, "wake_at": wake_at})
    _enter(call)
    rest = _Rest(execution, call)
    while True:
        left = wake_at - ids.now_us()
        if left <= 0:
            call.succeeded(None)
            return None
        yield from rest.block(left, wake_at, None)


def _waiting(execution: Execution, name: str, timeout: float | timedelta | None,
             model: type[Any] | None) -> Blocking[Any]:
    validation.name(name, "an event name")
    seconds = None if timeout is None else _seconds(timeout, "fl.wait_for_event() timeout")
    adapter, schema = _model_of(model)
    position = execution.allocate()
    call = StepCall(execution, WAIT_STEP_PREFIX + name, position, _NO_RETRY, None,
                    model if model is not None else NO_HINT, lambda: text)
    hit, value = call.replay()
    if hit:
        return value
    recorded = call.recorded
    again = recorded is not None and recorded.status == "failed"
    if again and recorded is not None and _timed_out(recorded) \
            and execution.last_recorded > position:
        # The workflow went on after this wait timed out: replay the timeout.
        raise WaitTimeout(str(error_data(recorded.error or "{}").get("message", "")), name)
    until = None if again else _recorded(recorded, "until")
    if until is None and seconds is not None:
        until = ids.now_us() + int(seconds * 1_000_000)
    text = json.dumps({"event": name, "timeout": seconds, "until": until, "schema": schema})
    _enter(call)
    if again:  # a resumed failed wait waits afresh: its new timeout is what is recorded
        execution.runtime.store.set_step_input(execution.run_id, position, text)
    store, rest = execution.runtime.store, _Rest(execution, call)
    while True:
        found = store.next_event(execution.run_id, name)
        if found is not None:
            event_id, payload = found
            problem = _misfit(adapter, payload)
            if problem is not None:
                store.reject_event(event_id, problem, ids.now_us())
                continue
            now = ids.now_us()
            if not store.consume_event(execution.run_id, execution.token, position,
                                       event_id, payload, now):
                rest.interrupted()
            call.traced("completed", now, None)
            return None if payload is None else execution.runtime.serializer.loads(
                payload, model if model is not None else NO_HINT)
        now = ids.now_us()
        if until is not None and now >= until:
            error = WaitTimeout(f"no event {name!r} arrived within {seconds:g}s "
                                f"(step {call.name!r}, position {position})", name)
            call.failed(error)
            raise error
        left = None if until is None else until - now
        yield from rest.block(left, until, name)


class _Rest:
    """Blocking at a sleep or wait: in this thread, or by suspending the run."""

    def __init__(self, execution: Execution, call: StepCall) -> None:
        self.execution = execution
        self.call = call
        self.poll = _POLL_FIRST
        self.checked = time.monotonic()

    def block(self, left_us: int | None, wake_at: int | None,
              event: str | None) -> Blocking[None]:
        execution = self.execution
        deadline = execution.deadline_at
        if deadline is not None:
            if ids.now_us() >= deadline:
                raise DeadlineExceeded(f"run {execution.run_id_text} passed its deadline "
                                       f"at {self.call.name!r} (position {self.call.position})")
            wake_at = deadline if wake_at is None else min(wake_at, deadline)
            left_us = deadline - ids.now_us() if left_us is None else \
                min(left_us, deadline - ids.now_us())
        limit = execution.runtime.suspend_after
        if execution.queue is not None and limit is not None \
                and (left_us is None or left_us > limit * 1_000_000):
            outcome = execution.runtime.store.suspend_run(
                execution.run_id, execution.token, self.call.position, wake_at, event)
            if outcome == "suspended":
                raise SuspendedSignal(event, wake_at)
            if outcome == "event":
                return
            self.interrupted()
        stopping = execution.runtime.stopping
        if stopping is not None and stopping.is_set():
            raise WorkerStopping(f"run {execution.run_id_text} stops at {self.call.name!r}: "
                                 "its worker is shutting down (the wait goes on elsewhere)")
        pause = _CHECK_EVERY if event is None else self.poll
        self.poll = min(self.poll * 2, _POLL_LONGEST)
        if left_us is not None:
            pause = min(pause, max(left_us / 1_000_000, 0.0))
        yield pause
        if time.monotonic() - self.checked >= _CHECK_EVERY:
            self.checked = time.monotonic()
            state = execution.runtime.store.get_status(execution.run_id)
            if state is None or state[0] != "running":
                self.interrupted()

    def interrupted(self) -> None:
        """The run is no longer this execution's to advance: say why."""
        raise interruption(self.execution)


# -- helpers --------------------------------------------------------------------------
def _body(what: str) -> Execution:
    execution = current_execution(what)
    if step_of(execution) is not None:
        raise ConfigurationError(f"{what} is called from the workflow body, not inside a "
                                 "step (a step is one attempt of work; waiting belongs "
                                 "between steps)")
    return execution


def _enter(call: StepCall) -> None:
    """Begin the step, unless the run was suspended at it (it is woken, not re-begun)."""
    if call.recorded is None or call.recorded.status != "waiting":
        call.begin()


def _recorded(row: StepRow | None, key: str) -> int | None:
    if row is None or not row.input:
        return None
    try:
        value = json.loads(readable(row.input, "wait")).get(key)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _timed_out(row: StepRow) -> bool:
    try:
        return bool(str(error_data(row.error or "{}").get("type", "")).endswith(".WaitTimeout"))
    except ValueError:
        return False


def _seconds(value: float | timedelta, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{what} must be a number of seconds ≥ 0 or a timedelta, "
                                 f"got {value!r}")
    return float(seconds)


def _model_of(model: type[Any] | None) -> tuple[Any, dict[str, Any] | None]:
    """A pydantic adapter for ``model`` and its JSON Schema (recorded with the wait, so a
    sender in another process can refuse a payload that does not fit)."""
    if model is None:
        return None, None
    from pydantic import TypeAdapter  # noqa: PLC0415 (start-up time: waits are rare)

    try:
        adapter = TypeAdapter(model)
        return adapter, adapter.json_schema()
    except Exception as exc:
        raise ConfigurationError(f"fl.wait_for_event(model=...) needs a type pydantic can "
                                 f"validate and describe as JSON Schema: {exc}") from None


def _misfit(adapter: Any, payload: str | None) -> str | None:
    """Why ``payload`` does not fit the wait's model (None: it does)."""
    if adapter is None:
        return None
    from pydantic import ValidationError  # noqa: PLC0415

    try:
        adapter.validate_json("null" if payload is None else payload)
    except ValidationError as exc:
        return f"the payload does not fit the wait's model: {exc.errors()[0]['msg']}"
    return None


__all__ = ["SLEEP_STEP", "WAIT_STEP_PREFIX", "sleep", "sleep_async", "wait_for_event",
           "wait_for_event_async"]
