"""Child runs that don't block: ``fl.start_child``, ``ChildHandle.result`` and
``fl.gather`` (and their ``_async`` twins), called from a workflow body.

Starting is a step of the parent (``start_child:<workflow>``) whose record holds the
child's id; the child run is inserted in the same transaction as that step's start, so a
parent that re-executes the step (after a crash) finds the same child and never creates
a second one. Waiting is another step (``child_result:<workflow>``) whose output is the
child's output: a resume replays it without waiting.

A child without a queue runs on a thread of the parent's process; with a queue, a worker
claims it. A parent execution that replays a start finds a thread child its dead
predecessor left ``running`` and takes it over (compare-and-set on its lease), so the
child goes on from its own recorded steps.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from . import ids, validation
from .blocking import Blocking, drive, drive_async
from .encryption import error_data
from .errors import (
    ConfigurationError,
    DeadlineExceeded,
    RunCancelled,
    RunFailed,
    RunNotFound,
    WorkerStopping,
)
from .executor import Execution, executing_here, new_run, prepare_inputs, resume_position
from .models import ErrorInfo
from .runcontext import current_execution, step_of
from .serialization import NO_HINT, call_arguments, decode_inputs
from .stepcall import StepCall, asyncio_module, interruption
from .workflow import RetryPolicy, WorkflowDef, WorkflowRef, definition_of

if TYPE_CHECKING:
    from .executor import Runtime
    from .store import RunRow

START_PREFIX = "start_child:"  # + the child's workflow name
RESULT_PREFIX = "child_result:"
_NO_RETRY = RetryPolicy()
# A wait looks at its child's record this often (growing to the longer interval), and
# checks every second that its own run was not cancelled, paused or taken over.
_POLL_FIRST, _POLL_LONGEST, _CHECK_EVERY = 0.01, 0.5, 1.0
_threads_lock = threading.Lock()
log = logging.getLogger("flowledger")


class ChildHandle:
    """A child run started with ``fl.start_child``: ``result()`` waits for its output.

    ``id`` is the child's run id. A handle belongs to the run that started it; waiting is
    a recorded step of that run (replayed on resume).

    Example::

        handle = fl.start_child(summarize, doc_id)
        ...  # other steps run meanwhile
        summary = handle.result()
    """

    def __init__(self, execution: Execution, run_id: uuid.UUID,
                 definition: WorkflowDef) -> None:
        self.id = str(run_id)
        self.workflow = definition.name
        self._run_id = run_id
        self._execution = execution
        self._definition = definition

    def __repr__(self) -> str:
        return f"ChildHandle({self.workflow!r}, {self.id!r})"

    def result(self) -> Any:
        """Wait durably for the child and return its output; raises ``RunFailed`` /
        ``RunCancelled`` (with the child's ``run_id``) when it failed or was cancelled.

        Example: ``rows = fl.start_child(load, "2024-05").result()``
        """
        return drive(self._wait("ChildHandle.result()"))

    def result_async(self) -> Awaitable[Any]:
        """``result()`` for async workflows; its position is taken at the call.

        Example: ``rows = await handle.result_async()``
        """
        return drive_async(self._wait("ChildHandle.result_async()"))

    def _wait(self, what: str) -> Blocking[Any]:
        execution = _body(what)
        if execution is not self._execution:
            raise ConfigurationError(f"{what}: {self!r} was started by run "
                                     f"{self._execution.run_id_text}; only that run's "
                                     "workflow body can wait for it")
        return _waiting(execution, self._run_id, self._definition, execution.allocate())


def start_child(workflow: WorkflowRef, /, *args: Any, queue: str | None = None,
                **kwargs: Any) -> ChildHandle:
    """Start a child run of ``workflow`` and return at once with its handle.

    The start is a recorded step of this run: on resume it returns a handle on the same
    child, never a second one. Without ``queue`` the child runs on a thread of this
    process; with one, it is queued there for any worker. Wait with ``handle.result()``
    or ``fl.gather(...)``.

    Example::

        @fl.workflow()
        def report(ids: list[int]) -> list[str]:
            handles = [fl.start_child(summarize, i) for i in ids]
            return fl.gather(*handles)
    """
    execution = _body("fl.start_child()")
    definition = definition_of(workflow)
    queue_name = None if queue is None else validation.name(queue, "queue")
    runtime = execution.runtime
    position = execution.allocate()
    values, inputs_text = prepare_inputs(runtime, definition, args, kwargs,
                                         queued=queue_name is not None)
    call = StepCall(execution, START_PREFIX + definition.name, position, _NO_RETRY, None,
                    NO_HINT, lambda: inputs_text)
    hit, value = call.replay()
    if hit:
        child_id = uuid.UUID(str(value))
        _revive_dead(execution.runtime, child_id, definition)
        return ChildHandle(execution, child_id, definition)
    now = ids.now_us()
    deadline = execution.deadline_at
    if definition.deadline is not None:
        own = now + int(definition.deadline * 1_000_000)
        deadline = own if deadline is None else min(deadline, own)
    child = new_run(definition, execution.owner, runtime.serializer.name, inputs_text,
                    executor=None if queue_name else runtime.identity, created_at=now,
                    deadline_at=deadline, parent_id=execution.run_id, queue=queue_name,
                    traceparent=execution.trace.child_traceparent(
                        execution.run_id, position, call.attempt + 1))
    recorded = call.recorded
    fresh = recorded is None or recorded.child_run_id is None
    if not fresh and recorded is not None and recorded.child_run_id is not None:
        child.id = recorded.child_run_id  # started before this process died: the same child
    call.child = child
    call.begin()  # inserts the child run (unless it exists) with this step's start
    if fresh and queue_name is None:
        args_, kwargs_ = call_arguments(definition.signature, values)
        _launch(runtime, Execution(runtime, child.id, child.lease_token or "", definition,
                                   [], child.deadline_at, child.owner,
                                   traceparent=child.traceparent), args_, kwargs_)
    elif not fresh:
        _revive_dead(runtime, child.id, definition)
    call.succeeded(str(child.id))
    return ChildHandle(execution, child.id, definition)


def gather(*handles: ChildHandle) -> list[Any]:
    """Wait for several children and return their outputs in the order given.

    Each wait is a recorded step, taken in order; the first child (in that order) that
    failed or was cancelled raises its ``RunFailed`` / ``RunCancelled`` here, like a
    failed step (the others go on running).

    Example: ``a, b = fl.gather(fl.start_child(left, x), fl.start_child(right, x))``
    """
    _check_handles("fl.gather()", handles)
    return [handle.result() for handle in handles]


async def gather_async(*handles: ChildHandle) -> list[Any]:
    """``fl.gather`` for async workflows.

    Example: ``outputs = await fl.gather_async(*handles)``
    """
    _check_handles("fl.gather_async()", handles)
    return [await handle.result_async() for handle in handles]


def _check_handles(what: str, handles: Sequence[Any]) -> None:
    for index, handle in enumerate(handles):
        if not isinstance(handle, ChildHandle):
            raise ConfigurationError(f"{what} takes handles returned by fl.start_child(); "
                                     f"argument {index} is {type(handle).__name__} "
                                     f"({handle!r:.80})")


# -- waiting ----------------------------------------------------------------------
def _waiting(execution: Execution, child_id: uuid.UUID, definition: WorkflowDef,
             position: int) -> Blocking[Any]:
    text = json.dumps({"child": str(child_id)})
    call = StepCall(execution, RESULT_PREFIX + definition.name, position, _NO_RETRY, None,
                    definition.return_hint, lambda: text)
    hit, value = call.replay()
    if hit:
        return value
    call.begin()
    retried = False
    runtime = execution.runtime
    poll, checked = _POLL_FIRST, time.monotonic()
    while True:
        row = runtime.store.get_run(child_id, None)
        if row is None:
            error: Exception = RunNotFound(f"child run {child_id} (it was purged)")
            call.failed(error)
            raise error
        if row.status == "completed":
            text_out = runtime.payload(child_id, row.owner, row.output)
            output = (None if text_out is None
                      else runtime.serializer.loads(text_out, definition.return_hint))
            return call.succeeded(output)
        if row.status in ("failed", "cancelled"):
            own = runtime.store.get_status(execution.run_id)
            if own is None or own[0] != "running":  # cancelled with its children, say
                raise interruption(execution)
            # A child that had ended before this execution of its parent began (the parent
            # is being resumed, after the failure or a cancellation of both) is resumed
            # once with it; one that ends while this wait watches is this wait's failure.
            ended = row.completed_at
            if not retried and ended is not None and ended < execution.started_us:
                retried = True
                _resume_ended(runtime, row, definition)
                continue
            error = _ended(row)
            call.failed(error)
            raise error
        stopping = runtime.stopping
        if stopping is not None and stopping.is_set():
            raise WorkerStopping(f"run {execution.run_id_text} stops at {call.name!r}: its "
                                 "worker is shutting down (the child goes on)")
        if execution.deadline_at is not None and ids.now_us() >= execution.deadline_at:
            raise DeadlineExceeded(f"run {execution.run_id_text} passed its deadline at "
                                   f"{call.name!r} (position {position})")
        yield poll
        poll = min(poll * 2, _POLL_LONGEST)
        if time.monotonic() - checked >= _CHECK_EVERY:
            checked = time.monotonic()
            state = runtime.store.get_status(execution.run_id)
            if state is None or state[0] != "running":
                raise interruption(execution)


def _ended(row: RunRow) -> Exception:
    if row.status == "cancelled":
        return RunCancelled(str(row.id))
    error = ErrorInfo.from_dict(error_data(row.error or "{}"))
    return RunFailed(str(row.id), error.type if error else "?", error.message if error else "")


# -- executing children ------------------------------------------------------------
def _launch(runtime: Runtime, execution: Execution, args: Sequence[Any],
            kwargs: dict[str, Any]) -> None:
    """Execute a child run on a thread of this process (``Ledger.close`` waits for it)."""

    def target() -> None:
        try:
            if execution.definition.is_async:
                asyncio_module().run(execution.run_async(args, dict(kwargs)))
            else:
                execution.run_sync(args, dict(kwargs))
        except BaseException as exc:  # recorded in the child's run: its parent reads it there
            log.debug("child run %s ended: %r", execution.run_id_text, exc)
        finally:
            with _threads_lock:
                runtime.child_threads.discard(thread)

    thread = threading.Thread(target=target, name=f"flowledger-child-{execution.run_id_text}")
    with _threads_lock:
        runtime.child_threads.add(thread)
    thread.start()


def join_children(runtime: Runtime) -> None:
    """Wait for every child run this runtime executes on threads (and their children)."""
    while True:
        with _threads_lock:
            running = list(runtime.child_threads)
        if not running:
            return
        for thread in running:
            thread.join()


def _revive_dead(runtime: Runtime, child_id: uuid.UUID, definition: WorkflowDef) -> None:
    """A thread child left ``running`` by a dead execution goes on here (a queued child
    is its workers' to take over, when its lease expires)."""
    row = runtime.store.get_run(child_id, None)
    if row is None or row.status != "running" or row.queue is not None \
            or row.lease_expires_at is not None:
        return
    alive = (executing_here(row.id) if row.executor == runtime.identity
             else ids.is_alive_here(row.executor))
    if alive is not True:
        _take_over(runtime, row, definition)


def _resume_ended(runtime: Runtime, row: RunRow, definition: WorkflowDef) -> None:
    """Resume a failed or cancelled child: back to its queue, or here on a thread."""
    if row.queue is not None:
        position = resume_position(runtime.store.get_steps(row.id))
        runtime.store.requeue_run(row.id, None, row.queue, position, ids.now_us())
    else:
        _take_over(runtime, row, definition)


def _take_over(runtime: Runtime, row: RunRow, definition: WorkflowDef) -> None:
    store = runtime.store
    recorded = store.get_steps(row.id)
    token = ids.new_token()
    if not store.claim_run(row.id, row.lease_token, token, runtime.identity, ids.now_us(),
                           resume_position(recorded)):
        return  # another execution took it over first: it goes on there
    serializer = runtime.serializer
    context = {name: None if value is None else serializer.loads(value)
               for name, value, _, _ in store.context_of(row.id)}
    values = decode_inputs(serializer, row.inputs, definition.fn, what=f"child run {row.id}")
    args, kwargs = call_arguments(definition.signature, values)
    _launch(runtime, Execution(runtime, row.id, token, definition, recorded, row.deadline_at,
                               row.owner, context, traceparent=row.traceparent), args, kwargs)


# -- helpers ------------------------------------------------------------------------
def _body(what: str) -> Execution:
    execution = current_execution(what)
    if step_of(execution) is not None:
        raise ConfigurationError(f"{what} is called from the workflow body, not inside a "
                                 "step (a step is one attempt of work)")
    return execution


__all__ = ["RESULT_PREFIX", "START_PREFIX", "ChildHandle", "gather", "gather_async",
           "join_children", "start_child"]
