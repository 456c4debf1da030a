"""Executes one run: replays recorded steps, records new ones, finalizes the run.

Positions are handed out synchronously at call time (``allocate``), before any step
body runs, so concurrent steps keep the order in which the workflow called them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from . import ids, traceids
from .artifacts import OUTPUT_MARKER, OUTPUT_MEDIA, OUTPUT_PREFIX, ArtifactStore, RunArtifacts
from .errors import (
    CancelledSignal,
    ConfigurationError,
    LeaseLost,
    NonDeterminismError,
    PausedSignal,
    RedactedInputs,
    RunCancelled,
    RunFailed,
    RunPaused,
    RunWaiting,
    SerializationError,
    SkipStep,
    StoreFull,
    StoreUnavailable,
    SuspendedSignal,
    WorkerStopping,
    WorkflowNotFound,
)
from .redact import Redactor
from .runcontext import calling, running
from .serialization import NO_HINT, Serializer, call_arguments, check_size, coerce_inputs
from .stepcall import StepCall, asyncio_module, await_with_timeout, error_text
from .store import NewRun, SqlStore, StepRow
from .telemetry import Telemetry, traced
from .timeouts import call_with_timeout
from .workflow import RetryPolicy, StepDef, WorkflowDef, load_entrypoint, registered

_NO_RETRY = RetryPolicy()
# Runs whose workflow body is executing in this process right now. A run recorded as
# executed by this process but absent here was abandoned (e.g. the store failed while
# finishing it) and may be resumed without waiting for the process to exit.
_executing: set[uuid.UUID] = set()
_executing_lock = threading.Lock()


def executing_here(run_id: uuid.UUID) -> bool:
    with _executing_lock:
        return run_id in _executing


def _enter(run_id: uuid.UUID) -> None:
    with _executing_lock:
        _executing.add(run_id)


def _leave(run_id: uuid.UUID) -> None:
    with _executing_lock:
        _executing.discard(run_id)


@dataclass
class Runtime:
    """What executions share with the Ledger that created them."""

    store: SqlStore
    serializer: Serializer
    max_payload_bytes: int
    identity: str
    artifacts: ArtifactStore | None = None
    offload_bytes: int = 1024 * 1024
    # Set by a worker that is shutting down: runs stop before their next step.
    stopping: threading.Event | None = None
    # Set by a worker: a queued run that would sleep or wait longer than this many
    # seconds lets go of its slot and lease (status ``waiting``) instead of blocking.
    suspend_after: float | None = None
    # What steps log (``logging``; ``print`` too with capture_print) is recorded with
    # each attempt (``logcapture``).
    capture_logs: bool = True
    capture_print: bool = False
    # Child runs started with fl.start_child executing on threads here (``children``).
    child_threads: set[threading.Thread] = field(default_factory=set)
    # Where spans go (telemetry.md); None: tracing is off and costs nothing.
    telemetry: Telemetry | None = None
    # What is redacted before it is recorded (redact.py); None: nothing, at no cost.
    redactor: Redactor | None = None

    def error(self, exc: BaseException) -> str:
        """An error as recorded (``error_text``), redacted."""
        text = error_text(exc)
        return text if self.redactor is None else self.redactor.error_json(text)

    def payload(self, run_id: uuid.UUID, owner: str, text: str | None) -> str | None:
        """Stored payload text, following an offloaded-output reference to its artifact."""
        if text is None or not text.startswith(OUTPUT_MARKER) or self.artifacts is None:
            return text
        key = text[len(OUTPUT_MARKER):]
        return RunArtifacts(self.store, self.artifacts, run_id, owner).read_bytes(key).decode()

    def payload_head(self, owner: str, digest: str, chars: int) -> str:
        """The start of an offloaded payload: its first ``chars`` characters at most."""
        if self.artifacts is None:
            return ""
        # UTF-8 takes at most 4 bytes a character; a character cut at the end is dropped.
        head = self.artifacts.head(owner, digest, chars * 4)
        return head.decode("utf-8", errors="ignore")[:chars]


def new_run(code: WorkflowDef | tuple[str, str, str], owner: str, serializer: str,
            inputs: str | None, *, executor: str | None = None, created_at: int | None = None,
            **options: Any) -> NewRun:
    """The record of a new run of ``code`` (a workflow definition, or the recorded name,
    version and entrypoint of one): ``running`` and held by ``executor`` (with a fresh
    lease token) when one is given, else ``pending`` for a worker. ``options`` are
    NewRun's optional fields (deadline, tags, lineage, queue, keys). Every new run record
    is made here. A run made inside a traced request (a current OpenTelemetry span)
    records its traceparent, so its trace continues the request's.

    Example: ``new_run(definition, "default", "json", "{}", executor=runtime.identity)``
    """
    name, version, entrypoint = (code if isinstance(code, tuple)
                                 else (code.name, code.version, code.entrypoint))
    return NewRun(
        id=ids.new_run_id(), workflow=name, version=version, entrypoint=entrypoint,
        owner=owner,
        status="running" if executor is not None else "pending", serializer=serializer,
        inputs=inputs, created_at=ids.now_us() if created_at is None else created_at,
        executor=executor, lease_token=None if executor is None else ids.new_token(),
        spec_text=None if isinstance(code, tuple) else code.source,
        **{"traceparent": traceids.current_traceparent(), **options})


def prepare_inputs(runtime: Runtime, definition: WorkflowDef, args: Sequence[Any],
                   kwargs: Mapping[str, Any], *, convert: bool = False,
                   queued: bool = False) -> tuple[dict[str, Any], str]:
    """Bind a call to the workflow's parameters, check the given values against their
    annotations (converting them with ``convert``: inputs from JSON or a command line)
    and serialize them for the run record (redacted; ``queued``: refused when redaction
    changes them, as a worker would run from the record). Nothing is recorded when they
    do not fit."""
    try:
        bound = definition.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"bad arguments for workflow {definition.name!r}: {exc}") from None
    try:
        bound.arguments.update(coerce_inputs(definition.fn, bound.arguments, convert=convert))
    except ConfigurationError as exc:
        raise ConfigurationError(f"workflow {definition.name!r}: {exc}") from None
    bound.apply_defaults()
    values = dict(bound.arguments)
    return values, encode_inputs(runtime, definition, values, queued=queued)


def encode_inputs(runtime: Runtime, definition: WorkflowDef, values: Mapping[str, Any], *,
                  queued: bool = False) -> str:
    """A run's inputs as recorded (redacted). ``queued``: the run will be executed from
    this record by a worker, so inputs redaction changes are refused (RedactedInputs)."""
    what = f"inputs of workflow {definition.name!r}"
    try:
        text = runtime.serializer.dumps(dict(values))
    except SerializationError as exc:
        raise SerializationError(f"{what}: {exc}") from None
    if runtime.redactor is not None:
        text, paths = runtime.redactor.json_text(text)
        if paths and queued:
            raise RedactedInputs(
                f"the inputs {', '.join(paths)} of workflow {definition.name!r} are redacted "
                "(Ledger(redact=...) or FLOWLEDGER_REDACT), so a worker could not execute "
                "the run from its record: pass secrets by reference (a secret's name, an "
                "environment variable) instead of as inputs", tuple(paths))
    return check_size(text, runtime.max_payload_bytes, what)


class Execution:
    """One attempt to advance one run, holding its lease token."""

    def __init__(self, runtime: Runtime, run_id: uuid.UUID, token: str,
                 definition: WorkflowDef, recorded: Sequence[StepRow],
                 deadline_at: int | None, owner: str,
                 context: dict[str, Any] | None = None, traceparent: str | None = None) -> None:
        self.runtime = runtime
        self.traceparent = traceparent
        self._trace: traceids.RunTrace | None = None
        self.owner = owner
        self.context: dict[str, Any] = context or {}
        self.run_id = run_id
        self.run_id_text = str(run_id)
        self.token = token
        self.definition = definition
        self.recorded = {row.position: row for row in recorded}
        self.last_recorded = max(self.recorded, default=0)
        self.deadline_at = deadline_at
        # The queue of a run a worker executes: only such a run can suspend (a worker
        # claims it again when it wakes).
        self.queue: str | None = None
        # When the run was due: the tick of a schedule's run (``fl.current_run()``).
        self.scheduled_at: datetime | None = None
        self._next_position = 0
        self._lock = threading.Lock()
        # When this execution began: a child that ended before it is one nobody waited
        # for yet (``children``).
        self.started_us = ids.now_us()

    @property
    def trace(self) -> traceids.RunTrace:
        """The trace this run's spans belong to (computed when first asked for)."""
        if self._trace is None:
            self._trace = traceids.RunTrace.of(self.run_id, self.traceparent)
        return self._trace

    def traced_end(self) -> None:
        """The run's end was just committed: its span goes out when tracing is on."""
        if self.runtime.telemetry is not None:
            self.runtime.telemetry.run_ended(self)

    def allocate(self) -> int:
        with self._lock:
            self._next_position += 1
            return self._next_position

    # -- the workflow body ---------------------------------------------------------
    def run_sync(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        _enter(self.run_id)
        try:
            try:
                with running(self):
                    result = self.definition.fn(*args, **kwargs)
            except BaseException as exc:
                self._finish_error(exc)
                raise  # _finish_error raises the public error; this keeps mypy informed
            return self._finish_ok(result)
        finally:
            _leave(self.run_id)

    async def run_async(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        _enter(self.run_id)
        try:
            try:
                with running(self):
                    result = await self.definition.fn(*args, **kwargs)
            except BaseException as exc:
                self._finish_error(exc)
                raise
            return self._finish_ok(result)
        finally:
            _leave(self.run_id)

    def _finish_ok(self, result: Any) -> Any:
        store = self.runtime.store
        try:
            self._check_all_recorded_steps_reached()
            text = self.encode(result, f"output of workflow {self.definition.name!r}")
        except Exception as exc:
            self._finish_error(exc)
            raise
        if not store.finish_run(self.run_id, self.token, "completed", text, None, ids.now_us()):
            self._stopped_by_another()
        self.traced_end()
        return result

    def _stopped_by_another(self) -> None:
        """The run could not be finished: it was paused (it rests until resumed; a resume
        replays what completed) or cancelled meanwhile."""
        state = self.runtime.store.get_status(self.run_id)
        if state is not None and state[0] == "paused":
            self.runtime.store.release_paused(self.run_id, self.token)
            raise RunPaused(self.run_id_text)
        raise RunCancelled(self.run_id_text)

    def _finish_error(self, exc: BaseException) -> None:
        store = self.runtime.store
        if isinstance(exc, LeaseLost | WorkerStopping | StoreUnavailable | StoreFull):
            # Not the workflow's failure but the store's: the run stays as recorded, to
            # be resumed (a worker hands it back as soon as the store answers again).
            raise exc
        if isinstance(exc, CancelledSignal):
            store.finish_run(self.run_id, self.token, "cancelled", None, None, ids.now_us())
            self.traced_end()
            raise RunCancelled(self.run_id_text) from None
        if isinstance(exc, SuspendedSignal):  # recorded as waiting by the sleep or wait
            raise RunWaiting(self.run_id_text, exc.waiting_for, exc.wake_at) from None
        if isinstance(exc, PausedSignal):  # nothing failed: the run rests, held by no one
            store.release_paused(self.run_id, self.token)
            raise RunPaused(self.run_id_text) from None
        # A non-determinism error changes nothing recorded: the step left running by the
        # previous execution stays as it was.
        if not store.finish_run(self.run_id, self.token, "failed", None,
                                self.runtime.error(exc),
                                ids.now_us(),
                                interrupt_steps=not isinstance(exc, NonDeterminismError)):
            self._stopped_by_another()  # paused or cancelled while it was failing
        self.traced_end()
        if isinstance(exc, Exception):
            kind = type(exc)
            raise RunFailed(self.run_id_text, f"{kind.__module__}.{kind.__qualname__}",
                            str(exc)) from exc

    def _check_all_recorded_steps_reached(self) -> None:
        beyond = [row for pos, row in self.recorded.items()
                  if pos > self._next_position and row.status == "completed"]
        if beyond:
            first = min(beyond, key=lambda row: row.position)
            raise NonDeterminismError(
                f"run {self.run_id_text}: the workflow finished after position "
                f"{self._next_position}, but step {first.name!r} is recorded at position "
                f"{first.position}; the code now calls fewer steps than when it was recorded")

    def encode(self, value: Any, what: str, position: int | None = None) -> str:
        """Serialize (redacted); a step output (``position`` given) over the offload size
        is saved as an artifact and replaced by a reference, so the database stays small."""
        return self.encode_output(value, what, position)[0]

    def encode_output(self, value: Any, what: str,
                      position: int | None = None) -> tuple[str, bool]:
        """``encode``, and whether redaction changed the value (it is then not replayable)."""
        runtime = self.runtime
        try:
            text = runtime.serializer.dumps(value)
        except SerializationError as exc:
            raise SerializationError(f"{what}: {exc}") from None
        redacted = False
        if runtime.redactor is not None:
            text, paths = runtime.redactor.json_text(text)
            redacted = bool(paths)
        if position is not None and runtime.artifacts is not None \
                and len(text) > runtime.offload_bytes:
            key = f"{OUTPUT_PREFIX}{position}"
            RunArtifacts(runtime.store, runtime.artifacts, self.run_id, self.owner, self.token,
                         position).save(key, text.encode(), OUTPUT_MEDIA)
            return OUTPUT_MARKER + key, redacted
        return check_size(text, runtime.max_payload_bytes, what), redacted

    def _encode_input(self, definition: StepDef, args: Sequence[Any],
                      kwargs: dict[str, Any]) -> str | None:
        if not definition.record_input:
            return None
        try:
            values = definition.bind(args, kwargs)
            return self.encode(values, f"input of step {definition.name!r}")
        except Exception:
            # Step inputs are recorded for inspection only (never replayed), so an input
            # that cannot be stored must not stop the step; note what it was instead.
            return json.dumps({"_unrecorded": f"{len(args)} args, keys {sorted(kwargs)}"})

    # -- steps ---------------------------------------------------------------------
    def call(self, definition: StepDef, position: int, args: Sequence[Any],
             kwargs: dict[str, Any], input_text: Callable[[], str | None] | None = None
             ) -> Any:
        """Run (or replay) a step at ``position``; ``input_text`` records another input
        than the arguments (a spec step records its request, secrets masked)."""
        attempt = StepCall(self, definition.name, position, definition.policy,
                            definition.timeout, definition.return_hint,
                            input_text or (lambda: self._encode_input(definition, args,
                                                                      kwargs)))
        hit, value = attempt.replay()
        if hit:
            return value
        while True:
            attempt.begin()
            try:
                attempt.wait_for_rate(definition.rate, args, kwargs)
                with calling(attempt), traced(self.runtime.telemetry, attempt):
                    result = call_with_timeout(definition.fn, args, kwargs,
                                               attempt.timeout(), attempt.label)
            except SkipStep as skip:
                return attempt.skipped(skip)
            except BaseException as exc:
                delay = attempt.failed(exc)
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            return attempt.succeeded(result)

    async def call_async(self, definition: StepDef, position: int, args: Sequence[Any],
                         kwargs: dict[str, Any]) -> Any:
        attempt = StepCall(self, definition.name, position, definition.policy,
                            definition.timeout, definition.return_hint,
                            lambda: self._encode_input(definition, args, kwargs))
        hit, value = attempt.replay()
        if hit:
            return value
        while True:
            attempt.begin()
            try:
                await attempt.wait_for_rate_async(definition.rate, args, kwargs)
                with calling(attempt), traced(self.runtime.telemetry, attempt):
                    result = await await_with_timeout(definition.fn(*args, **kwargs),
                                                      attempt.timeout(), attempt.label)
            except SkipStep as skip:
                return attempt.skipped(skip)
            except BaseException as exc:
                delay = attempt.failed(exc)
                if delay is None:
                    raise
                await asyncio_module().sleep(delay)
                continue
            return attempt.succeeded(result)

    # -- what the decorators call ---------------------------------------------------
    def record_step(self, definition: StepDef, args: Sequence[Any],
                    kwargs: dict[str, Any]) -> Any:
        """A call of a synchronous step from the workflow body: the next position."""
        return self.call(definition, self.allocate(), args, kwargs)

    def record_step_async(self, definition: StepDef, args: Sequence[Any],
                          kwargs: dict[str, Any]) -> Awaitable[Any]:
        """A call of an async step: its position is taken now, at the call."""
        return self.call_async(definition, self.allocate(), args, kwargs)

    def record_child(self, definition: WorkflowDef, args: Sequence[Any],
                     kwargs: dict[str, Any], position: int | None = None,
                     name: str | None = None) -> Any:
        """A call of a synchronous workflow from this one: a child run, one step here
        (at the next position, or at ``position`` taken earlier; named after the
        workflow, or ``name``)."""
        attempt, build, call_args, call_kwargs = self.child(definition, args, kwargs,
                                                            position, name)
        hit, value = attempt.replay()
        if hit:
            return value
        attempt.begin()
        try:
            child = build()
            result = (child.output if isinstance(child, CompletedChild)
                      else child.run_sync(call_args, call_kwargs))
        except BaseException as exc:
            attempt.failed(exc)
            raise
        return attempt.succeeded(result)

    def record_child_async(self, definition: WorkflowDef, args: Sequence[Any],
                           kwargs: dict[str, Any]) -> Awaitable[Any]:
        """A call of an async workflow from this (async) one: a child run."""
        if not self.definition.is_async:  # it would get a coroutine nobody awaits
            raise ConfigurationError(
                f"workflow {self.definition.name!r} is synchronous but calls the async "
                f"workflow {definition.name!r}: make it `async def` and `await` the child "
                "(or make the child synchronous)")
        attempt, build, call_args, call_kwargs = self.child(definition, args, kwargs)

        async def run() -> Any:
            hit, value = attempt.replay()
            if hit:
                return value
            attempt.begin()
            try:
                child = build()
                result = (child.output if isinstance(child, CompletedChild)
                          else await child.run_async(call_args, call_kwargs))
            except BaseException as exc:
                attempt.failed(exc)
                raise
            return attempt.succeeded(result)

        return run()

    # -- child workflows -----------------------------------------------------------
    def child(self, definition: WorkflowDef, args: Sequence[Any], kwargs: dict[str, Any],
              position: int | None = None, name: str | None = None
              ) -> tuple[StepCall, Callable[[], Execution | CompletedChild], list[Any],
                         dict[str, Any]]:
        """Prepare a child-run call: the parent step, and how to build the child."""
        position = self.allocate() if position is None else position
        values, inputs_text = prepare_inputs(self.runtime, definition, args, kwargs)
        attempt = StepCall(self, name or definition.name, position, _NO_RETRY, None,
                            definition.return_hint, lambda: inputs_text)
        recorded = self.recorded.get(position)
        now = ids.now_us()
        deadline = self.deadline_at
        if definition.deadline is not None:
            own = now + int(definition.deadline * 1_000_000)
            deadline = own if deadline is None else min(deadline, own)
        attempt.child = new_run(definition, self.owner, self.runtime.serializer.name,
                                inputs_text, executor=self.runtime.identity, created_at=now,
                                deadline_at=deadline, parent_id=self.run_id,
                                traceparent=self.trace.child_traceparent(
                                    self.run_id, position, attempt.attempt + 1))
        if recorded and recorded.child_run_id:  # started before: the same child
            attempt.child.id = recorded.child_run_id

        call_args, call_kwargs = call_arguments(definition.signature, values)

        def build() -> Execution | CompletedChild:
            assert attempt.child is not None
            return _child_execution(self.runtime, attempt.child, definition)

        return attempt, build, call_args, call_kwargs


class CompletedChild(NamedTuple):
    """A child run that had completed before its parent's step recorded it (the parent
    stopped in between): its recorded output stands, the child is not run again."""

    output: Any


def _child_execution(runtime: Runtime, child: NewRun,
                     definition: WorkflowDef) -> Execution | CompletedChild:
    """The child's execution: fresh if just created, else a takeover of the recorded one
    (or, if it completed, its recorded output)."""
    store = runtime.store
    row = store.get_run(child.id, None)
    if row is None:
        raise LeaseLost(f"child run {child.id} disappeared")
    if row.status == "completed":
        text = runtime.payload(child.id, row.owner, row.output)
        return CompletedChild(None if text is None
                              else runtime.serializer.loads(text, definition.return_hint))
    if row.lease_token == child.lease_token:
        return Execution(runtime, child.id, child.lease_token or "", definition, [],
                         child.deadline_at, child.owner, traceparent=row.traceparent)
    recorded = store.get_steps(child.id)
    serializer = runtime.serializer
    context = {name: None if value is None else serializer.loads(value)
               for name, value, _, _ in store.context_of(child.id)}
    token = ids.new_token()
    if not store.claim_run(child.id, row.lease_token, token, runtime.identity, ids.now_us(),
                           resume_position(recorded)):
        raise LeaseLost(f"child run {child.id} was taken over by another execution")
    return Execution(runtime, child.id, token, definition, recorded, row.deadline_at,
                     row.owner, context, traceparent=row.traceparent)


def resume_position(recorded: Sequence[StepRow]) -> int:
    """The first position a resumed run will execute rather than replay."""
    for row in recorded:
        if row.status not in ("completed", "skipped"):
            return row.position
    return (recorded[-1].position + 1) if recorded else 1


def resolve(name: str, entrypoint: str) -> WorkflowDef:
    """Find the code of a recorded run: its entrypoint, or the registry if that names it.

    Two modules may register workflows of the same name, so the registry is trusted
    only when its entry comes from the recorded entrypoint.
    """

    definition = registered(name)
    if definition is not None and definition.entrypoint == entrypoint:
        return definition
    loaded = load_entrypoint(entrypoint)
    if loaded.name != name:
        raise WorkflowNotFound(f"{entrypoint!r} is now workflow {loaded.name!r}, but the run "
                               f"was recorded as {name!r}")
    return loaded


__all__ = ["NO_HINT", "CompletedChild", "Execution", "Runtime", "encode_inputs", "new_run",
           "executing_here", "prepare_inputs", "resolve", "resume_position"]
