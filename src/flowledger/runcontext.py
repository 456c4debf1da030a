"""The current run and step: the one place that knows which execution code runs in.

The executor enters an execution while a workflow body runs and a step call while a
step body runs; everything else (``fl.context``, ``fl.artifacts``, ``fl.record_usage``,
``fl.current_step``, step pools) reads them through the accessors here, which raise
``NotInRun`` outside a run.

Example::

    @fl.step()
    def charge(amount: int) -> str:
        return payments.charge(amount, key=fl.current_step().idempotency_key)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from .errors import NotInRun

if TYPE_CHECKING:
    from .executor import Execution
    from .stepcall import StepCall

_execution: ContextVar[Execution | None] = ContextVar("flowledger_execution", default=None)
_call: ContextVar[StepCall | None] = ContextVar("flowledger_step_call", default=None)


@contextmanager
def running(execution: Execution) -> Iterator[None]:
    """Make ``execution`` the current run for the code inside the block."""
    token = _execution.set(execution)
    try:
        yield
    finally:
        _execution.reset(token)


@contextmanager
def calling(call: StepCall) -> Iterator[None]:
    """Make ``call`` the current step for the code inside the block (a step body)."""
    token = _call.set(call)
    try:
        yield
    finally:
        _call.reset(token)


def current_execution(what: str) -> Execution:
    """The executing run; NotInRun naming ``what`` needs one outside a run."""
    execution = _execution.get()
    if execution is None:
        raise NotInRun(f"{what} is only available inside a running workflow")
    return execution


def current_call(what: str) -> StepCall:
    """The executing step call; NotInRun naming ``what`` outside a step."""
    call = _call.get()
    if call is None:
        raise NotInRun(f"{what} is only available inside a step of a running workflow")
    return call


def active_call() -> StepCall | None:
    """The step call whose body runs in this thread or task, if any (no error outside)."""
    return _call.get()


def step_of(execution: Execution) -> StepCall | None:
    """The step of ``execution`` whose body is running here, if any (a workflow body
    between steps has none)."""
    call = _call.get()
    return call if call is not None and call.execution is execution else None


def recording_execution() -> Execution | None:
    """The execution a decorated step or workflow call is recorded in: the current run,
    unless the call happens inside a step body (then it is plain Python)."""
    return _execution.get() if _call.get() is None else None


class StepInfo(NamedTuple):
    """What a step body can learn about itself through ``fl.current_step()``."""

    run_id: str
    position: int
    name: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes: use it for external side effects."""
        return f"{self.run_id}:{self.position}"


def current_step() -> StepInfo:
    """The step being executed. Example: ``charge(key=fl.current_step().idempotency_key)``."""
    call = current_call("current_step()")
    return StepInfo(call.execution.run_id_text, call.position, call.name, call.attempt)


class RunInfo(NamedTuple):
    """What a workflow or step body can learn about its run through ``fl.current_run()``."""

    run_id: str
    workflow: str
    owner: str
    #: The queue a worker claimed it from (None: started in a process).
    queue: str | None
    #: When it was due: the tick a schedule started it for (the same on every resume),
    #: or when a delayed submit became due; None for a run started at once.
    scheduled_at: datetime | None


def current_run() -> RunInfo:
    """The run whose workflow or step is executing.

    Example::

        @fl.workflow()
        def nightly_report() -> str:
            tick = fl.current_run().scheduled_at  # the schedule's tick, timezone-aware
            return build_report(day=tick.date())
    """
    execution = current_execution("current_run()")
    return RunInfo(execution.run_id_text, execution.definition.name, execution.owner,
                   execution.queue, execution.scheduled_at)


def current_run_id() -> str:
    """The id of the run whose workflow or step is executing."""
    return current_execution("current_run_id()").run_id_text


__all__ = ["RunInfo", "StepInfo", "active_call", "calling", "current_call",
           "current_execution", "current_run", "current_run_id", "current_step",
           "recording_execution", "running", "step_of"]
