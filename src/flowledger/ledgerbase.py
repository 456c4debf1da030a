"""What every part of a Ledger shares: its store, runtime and records builder, the
threads it started, and the helpers the parts use (finding a visible run, preparing and
launching executions, waiting for an outcome).

``Ledger`` is this base and its parts — ``LedgerQueries``, ``LedgerQueueing``,
``LedgerTokens``, ``LedgerEvents`` — each a subclass, so every contract between them is
a method mypy checks.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import ids, validation
from .children import join_children
from .encryption import error_data
from .errors import (
    AmbiguousRunId,
    ConfigurationError,
    RunCancelled,
    RunFailed,
    RunNotFound,
    WorkflowNotFound,
    WorkflowVersionMismatch,
)
from .executor import Execution, Runtime, resolve
from .handle import RunHandle
from .logcapture import install as install_log_capture
from .models import ErrorInfo, Run, RunStatus, from_micros
from .records import Records, revision_token
from .schedules import tick_of
from .serialization import NO_HINT, call_arguments, decode_inputs
from .stepcall import asyncio_module
from .store import SPEC_ENTRYPOINT, RunRow, SqlStore, StepRow
from .workflow import WorkflowDef, registered

DEFAULT_OWNER = "default"


@dataclass
class Shared:
    """The resources of one opened Ledger, shared by its owner-scoped views."""

    url: str
    persistence: str
    store: SqlStore
    artifacts_url: str
    runtime: Runtime
    records: Records
    threads: set[threading.Thread] = field(default_factory=set)
    threads_lock: threading.Lock = field(default_factory=threading.Lock)


class Prepared(NamedTuple):
    """An execution ready to run, with the workflow's arguments."""

    execution: Execution
    args: list[Any]
    kwargs: dict[str, Any]


class LedgerBase:
    """The state and helpers shared by the parts of ``Ledger`` (see the module)."""

    def __init__(self, shared: Shared, owner: str | None) -> None:
        self._shared = shared
        self._runtime = shared.runtime
        self._records = shared.records
        self.store = shared.store
        self.url = shared.url
        self.persistence = shared.persistence
        self.artifacts_url = shared.artifacts_url
        self.owner = owner

    @property
    def identity(self) -> str:
        """This process as the executor of the runs it executes: ``host:pid:start``."""
        return self._runtime.identity

    # -- finding runs ------------------------------------------------------------------
    def run_uuid(self, run_id: str | uuid.UUID) -> uuid.UUID:
        """A run id as a UUID: a full id as it is, an unambiguous prefix (as ``flowledger
        runs`` prints them) resolved. Raises RunNotFound, AmbiguousRunId.

        Example: ``ledger.run_uuid("01a2350b-24e1")``
        """
        parsed = ids.parse_run_id(run_id)
        return parsed if parsed is not None else uuid.UUID(self.resolve_id(str(run_id)))

    def resolve_id(self, prefix: str) -> str:
        """The full id of the one run whose id starts with ``prefix`` (like git).

        Raises RunNotFound when none matches, AmbiguousRunId when several do.
        Example: ``ledger.resolve_id("01a2350b")``
        """
        text = prefix.strip().lower().replace("-", "")
        if len(text) == 32 and ids.parse_run_id(text) is not None:
            return str(self._visible(text).id)
        if not text or len(text) > 32 or any(c not in "0123456789abcdef" for c in text):
            raise RunNotFound(prefix)
        found = self.store.ids_with_prefix(text, self.owner, limit=2)
        if not found:
            raise RunNotFound(prefix)
        if len(found) > 1:
            raise AmbiguousRunId(f"run id prefix {prefix!r} matches several runs "
                                 f"({found[0]}, {found[1]}, …); give more characters")
        return str(found[0])

    def get(self, run_id: str | uuid.UUID, *, steps: bool = True,
            preview: int | None = None) -> Run:
        """The run with its steps in position order, usage (with its child runs'),
        context and artifacts, read from one snapshot. ``run_id`` may be an unambiguous
        prefix. Raises RunNotFound.

        With ``preview``, step inputs and outputs whose serialized text is longer than
        that many characters are the start of that text, flagged ``input_truncated`` /
        ``output_truncated`` (``step()`` reads them whole): a run of large payloads
        stays small to read. ``steps=False`` reads the run's row alone.

        Example: ``ledger.get(run_id).steps[0].attempt_history``
        """
        parsed = self.run_uuid(run_id)
        if not steps:
            row = self.store.get_run(parsed, self.owner)
            if row is None:
                raise RunNotFound(str(run_id))
            return self._records.run(row, None)
        if preview is not None and preview < 1:
            raise ConfigurationError("preview must be at least 1 character")
        found = self.store.read_run(parsed, self.owner, preview)
        if found is None:
            raise RunNotFound(str(run_id))
        return self._records.read(found, preview)

    def revision(self, run_id: str | uuid.UUID) -> str:
        """A token that changes whenever ``get(run_id)`` would read back differently
        (``Run.revision`` of that read); equal tokens mean nothing changed. One indexed
        read of the run and its child runs, no steps: what polling readers compare.
        Raises RunNotFound.

        Example: ``if ledger.revision(run_id) != seen: run = ledger.get(run_id)``
        """
        found, marks = self.store.revisions(self.run_uuid(run_id))
        if not found or (self.owner is not None and found[0].owner != self.owner):
            raise RunNotFound(str(run_id))
        return revision_token(found, marks)

    def handle(self, run_id: str | uuid.UUID) -> RunHandle:
        """A handle on an existing run, e.g. to wait for it from another process."""
        return RunHandle(self, str(self._visible(run_id).id))

    def result(self, run_id: str | uuid.UUID, timeout: float | None = None) -> Any:
        """Wait for a run (executing in any process) to end and return its output;
        raises RunFailed / RunCancelled, or TimeoutError after ``timeout`` seconds.

        Example: ``ledger.result(run_id, timeout=60)``
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        while True:
            row = self._visible(run_id)
            if row.status == RunStatus.COMPLETED:
                return self._decoded_output(row)
            if row.status == RunStatus.CANCELLED:
                raise RunCancelled(str(row.id))
            if row.status == RunStatus.FAILED:
                error = ErrorInfo.from_dict(error_data(row.error or "{}"))
                raise RunFailed(str(row.id), error.type if error else "?",
                                error.message if error else "")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {row.id} still {row.status} after {timeout}s")
            time.sleep(delay)  # polling another process's run: no in-process signal exists
            delay = min(delay * 2, 0.5)

    def _visible(self, run_id: str | uuid.UUID) -> RunRow:
        row = self.store.get_run(self.run_uuid(run_id), self.owner)
        if row is None:
            raise RunNotFound(str(run_id))
        return row

    def _owner_for(self, owner: str | None) -> str:
        if self.owner is not None and owner not in (None, self.owner):
            raise ConfigurationError(f"this Ledger acts for owner {self.owner!r} only")
        return validation.name(owner or self.owner or DEFAULT_OWNER, "owner")

    def _context(self, run_id: uuid.UUID) -> dict[str, Any]:
        serializer = self._runtime.serializer
        return {name: None if value is None else serializer.loads(value)
                for name, value, _, _ in self.store.context_of(run_id)}

    def _decoded_output(self, row: RunRow) -> Any:
        if row.output is None:
            return None
        definition = registered(row.workflow)
        hint = definition.return_hint if definition else NO_HINT
        return self._runtime.serializer.loads(row.output, hint)

    # -- executing runs ------------------------------------------------------------------
    def workflow_of(self, row: RunRow) -> WorkflowDef:
        """The code of a recorded run, checked against the version it was recorded with.
        Raises WorkflowNotFound, WorkflowVersionMismatch."""
        definition = self.code_of(row)
        if definition.version != row.version:
            raise WorkflowVersionMismatch(
                f"run {row.id} was recorded with {row.workflow!r} version {row.version!r}, "
                f"the code is version {definition.version!r}; fork the run to continue it "
                "on the new version")
        return definition

    def code_of(self, row: RunRow) -> WorkflowDef:
        """The code a recorded run executes: its Python entrypoint, or for a spec run the
        spec text stored with it (never the file, which may have changed since)."""
        if not row.entrypoint.startswith(SPEC_ENTRYPOINT):
            return resolve(row.workflow, row.entrypoint)
        from .specs.document import recorded_definition  # noqa: PLC0415 (start-up time)

        stored = self.store.spec_text(row.owner, row.entrypoint.removeprefix(SPEC_ENTRYPOINT))
        if stored is None:
            raise WorkflowNotFound(f"run {row.id} was recorded from a spec whose text is "
                                   "missing from the store")
        return recorded_definition(stored.text, f"<spec of run {row.id}>")

    def prepare(self, row: RunRow, token: str, recorded: Sequence[StepRow] | None = None,
                definition: WorkflowDef | None = None) -> Prepared:
        """The execution of a run this process now holds with ``token`` (a takeover, a
        worker's claim): its code, recorded steps (read unless given), context and
        arguments. Workers call it; so does ``resume``."""
        definition = definition or self.workflow_of(row)
        steps = list(self.store.get_steps(row.id) if recorded is None else recorded)
        values = decode_inputs(self._runtime.serializer, row.inputs, definition.fn,
                               what=f"run {row.id}")
        args, kwargs = call_arguments(definition.signature, values)
        execution = self._execution(row.id, token, definition, steps, row.deadline_at,
                                    row.owner, row.traceparent)
        execution.queue = row.queue
        execution.scheduled_at = tick_of(row.idempotency_key) or from_micros(row.scheduled_at)
        return Prepared(execution, args, kwargs)

    def recorded_error(self, exc: BaseException) -> str:
        """``exc`` as this Ledger records an error: JSON of its type, message and
        traceback, redacted (``Ledger(redact=...)``). Workers record why a run they
        claimed cannot start with it.

        Example: ``ErrorInfo.from_dict(json.loads(ledger.recorded_error(exc)))``
        """
        return self._runtime.error(exc)

    def execute(self, prepared: Prepared) -> Any:
        """Execute a prepared run in this thread (an async workflow in its own event
        loop) and return its output; raises RunFailed / RunCancelled."""
        execution, args, kwargs = prepared
        if not execution.definition.is_async:
            return execution.run_sync(args, kwargs)
        return asyncio_module().run(execution.run_async(args, kwargs))

    def stop_runs_when(self, event: threading.Event | None) -> None:
        """Runs this Ledger executes stop before their next step once ``event`` is set
        (and go back to their queue): how a worker shuts down gracefully."""
        self._runtime.stopping = event

    def suspend_waits_after(self, seconds: float | None) -> None:
        """Queued runs this Ledger executes that would sleep or wait longer than
        ``seconds`` let go of their worker slot and lease instead (status ``waiting``);
        None blocks instead. Workers set it (``Worker(suspend_after=...)``)."""
        self._runtime.suspend_after = seconds

    def capture_step_logs(self, *, logs: bool = True, print_output: bool = False) -> None:
        """Record what steps of runs this Ledger executes log: ``logging`` records and,
        with ``print_output``, what they print (still shown as usual). ``logs=False``
        records none. Shown by ``ledger.logs(run_id)`` and ``flowledger logs``.

        Example: ``ledger.capture_step_logs(print_output=True)``
        """
        if logs:
            install_log_capture(print_too=print_output)
        self._runtime.capture_logs = logs
        self._runtime.capture_print = logs and print_output

    def _execution(self, run_id: uuid.UUID, token: str, definition: WorkflowDef,
                   recorded: Sequence[StepRow], deadline_at: int | None,
                   owner: str, traceparent: str | None = None) -> Execution:
        context = self._context(run_id) if recorded else None
        return Execution(self._runtime, run_id, token, definition, recorded, deadline_at, owner,
                         context, traceparent)

    def _launch(self, prepared: Prepared) -> RunHandle:
        """Execute a prepared run on a new thread; its handle waits for it."""
        future: Future[Any] = Future()
        shared = self._shared

        def target() -> None:
            try:
                future.set_result(self.execute(prepared))
            except BaseException as exc:
                future.set_exception(exc)
            finally:
                with shared.threads_lock:
                    shared.threads.discard(thread)

        thread = threading.Thread(target=target,
                                  name=f"flowledger-run-{prepared.execution.run_id_text}")
        with shared.threads_lock:
            shared.threads.add(thread)
        thread.start()
        return RunHandle(self, prepared.execution.run_id_text, future)

    def _join_threads(self) -> None:
        with self._shared.threads_lock:
            running = list(self._shared.threads)
        for thread in running:
            thread.join()
        join_children(self._runtime)


__all__ = ["DEFAULT_OWNER", "LedgerBase", "Prepared", "Shared"]
