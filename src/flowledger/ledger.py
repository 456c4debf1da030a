"""The Ledger: the one place that starts, resumes, cancels and queries runs.

Every interface (the Python API, the CLI, the HTTP API) calls these methods. The Ledger
is its base (``ledgerbase.py``: shared state and helpers) and its parts, each in its own
module: queries, queueing, tokens, events, specs, webhooks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

from . import ids, runids, validation
from .api_tokens import LedgerTokens
from .artifacts import ArtifactStore
from .bulk import LedgerBulk
from .encryption import Keyring, readable
from .errors import (
    ConfigurationError,
    FlowledgerError,
    RunAlreadyRunning,
    RunInterrupted,
    RunNotFound,
    RunWaiting,
)
from .events import LedgerEvents
from .executor import (
    Runtime,
    encode_inputs,
    executing_here,
    new_run,
    prepare_inputs,
    resume_position,
)
from .handle import RunHandle, done_future
from .keyadmin import LedgerKeys
from .ledgerbase import LedgerBase, Prepared, Shared
from .mailbox import LedgerMailbox
from .metrics import LedgerMetrics
from .models import RunStatus
from .queueing import queue_name
from .ratelimits import LedgerRateLimits
from .records import Records
from .redact import KeyPattern, Redact, redactor_of
from .retentionpolicies import LedgerRetention
from .serialization import (
    JsonSerializer,
    Serializer,
    call_arguments,
    coerce_inputs,
    decode_inputs,
    refuse_redacted,
)
from .spec_registry import LedgerSpecs
from .stepcall import asyncio_module
from .steplogs import LedgerLogs
from .store import Durability, RunRow, SpoolingStore, SqlStore
from .telemetry import Telemetry, configured
from .traceexport import LedgerTraces
from .webhooks import LedgerWebhooks
from .workflow import WorkflowRef, definition_of

log = logging.getLogger("flowledger")
DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024
DEFAULT_OFFLOAD = 1024 * 1024


def default_artifacts_url(store: SqlStore) -> str:
    """A folder beside the SQLite file (``ledger.db`` → ``ledger-artifacts/``); for
    PostgreSQL a folder per database under ``~/.flowledger/artifacts/`` — the same from
    any working directory of this user. Set ``artifacts=`` (e.g. ``s3://bucket/prefix``)
    to share one store between machines."""
    backend = store.backend
    if backend.file is not None:
        return str(backend.file.with_name(backend.file.stem + "-artifacts"))
    database = hashlib.sha256(backend.describe().encode()).hexdigest()[:16]
    return str(Path.home() / ".flowledger" / "artifacts" / database)


def default_url() -> str:
    """The embedded default: ``./.flowledger/flowledger.db`` in the working directory."""
    return f"sqlite:///{Path.cwd() / '.flowledger' / 'flowledger.db'}"


class Ledger(LedgerBulk, LedgerTokens, LedgerEvents, LedgerSpecs, LedgerMailbox,
             LedgerWebhooks, LedgerLogs, LedgerTraces, LedgerMetrics, LedgerRateLimits,
             LedgerKeys, LedgerRetention):
    """Runs workflows durably and answers questions about them.

    ``url`` is ``sqlite:///path.db`` or ``postgresql://user@host/db``; without it the
    ``FLOWLEDGER_DATABASE_URL`` environment variable is used, else an embedded SQLite file
    under ``./.flowledger/``. Migrations are applied on open. A Ledger opened with
    ``owner=`` sees and creates only that owner's runs. ``durability`` (else the
    ``FLOWLEDGER_DURABILITY`` environment variable, else ``"full"``) is ``"strict"``,
    ``"full"`` or ``"normal"``: what survives a database crash or power loss (see
    docs/storage.md). ``create=False`` refuses to create a missing SQLite file
    (``DatabaseNotFound``): for tools that only read. What steps log through ``logging``
    is recorded with each attempt (``capture_logs``); ``capture_print`` adds what they
    print (see ``capture_step_logs``). ``telemetry`` sends every run as an OpenTelemetry
    trace (a ``fl.Telemetry``; None: as the ``OTEL_*`` environment variables say; False:
    never — see docs/tracing.md). ``encryption`` (a ``fl.Keyring``; else the
    ``FLOWLEDGER_ENCRYPTION_KEYS`` environment variable, when set) seals every payload
    before it reaches the database or the artifact store (see docs/encryption.md).
    ``redact`` names keys (a ``str``: any case; a
    compiled regex: ``fullmatch``) whose values are replaced by ``[redacted]`` before
    anything is recorded, or is a ``fl.Redact`` that adds value patterns; the keys the
    ``FLOWLEDGER_REDACT`` environment variable lists are always added (docs/redaction.md).

    Example::

        ledger = fl.Ledger()
        output = ledger.run(triage, 42)
        run = ledger.get(ledger.runs(workflow="triage", limit=1).runs[0].id)
    """

    def __init__(self, url: str | None = None, *, owner: str | None = None,
                 durability: Durability | None = None, serializer: Serializer | None = None,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD, artifacts: str | None = None,
                 offload_bytes: int = DEFAULT_OFFLOAD,
                 persistence: Literal["required", "best_effort"] = "required",
                 spool_dir: str | None = None, create: bool = True,
                 capture_logs: bool = True, capture_print: bool = False,
                 telemetry: Telemetry | bool | None = None,
                 encryption: Keyring | None = None,
                 redact: Redact | Iterable[KeyPattern] | None = None) -> None:
        url = url or os.environ.get("FLOWLEDGER_DATABASE_URL") or default_url()
        keyring = encryption if encryption is not None else Keyring.from_env()
        if max_payload_bytes <= 0 or offload_bytes <= 0:
            raise ConfigurationError("max_payload_bytes and offload_bytes must be positive")
        if persistence not in ("required", "best_effort"):
            raise ConfigurationError(f"persistence must be 'required' or 'best_effort', "
                                     f"not {persistence!r}")
        validation.optional_name(owner, "owner")
        chosen = cast(Durability, durability or os.environ.get("FLOWLEDGER_DURABILITY")
                      or "full")
        store: SqlStore = (
            SpoolingStore(url, durability=chosen,
                          spool_dir=spool_dir or str(Path.cwd() / ".flowledger" / "spool"),
                          keyring=keyring)
            if persistence == "best_effort"
            else SqlStore(url, durability=chosen, create=create, keyring=keyring))
        artifacts_url = (artifacts or os.environ.get("FLOWLEDGER_ARTIFACTS_URL")
                         or default_artifacts_url(store))
        runtime = Runtime(store, serializer or JsonSerializer(), max_payload_bytes,
                          ids.identity(), ArtifactStore(artifacts_url, store.sealing),
                          offload_bytes,
                          telemetry=configured(telemetry), redactor=redactor_of(redact))
        LedgerBase.__init__(self, Shared(url, persistence, store, artifacts_url, runtime,
                                         Records(runtime.serializer, runtime.payload,
                                                 runtime.payload_head)), owner)
        self.capture_step_logs(logs=capture_logs, print_output=capture_print)

    def for_owner(self, owner: str | None) -> Ledger:
        """A view of this Ledger that sees and creates only ``owner``'s runs (None: all
        owners), sharing its connections. Close only the original Ledger.

        Example: ``alice = ledger.for_owner("alice"); alice.runs()``
        """
        if self.owner is not None and owner != self.owner:
            raise ConfigurationError(f"this Ledger acts for owner {self.owner!r} only")
        validation.optional_name(owner, "owner")
        view = type(self).__new__(type(self))  # the same resources, another owner
        LedgerBase.__init__(view, self._shared, owner)
        return view

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        """Wait for the runs this Ledger started on threads, then release connections."""
        self._join_threads()
        if self._runtime.telemetry is not None:  # spans still buffered leave now
            self._runtime.telemetry.flush(timeout=10.0)
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- starting runs -------------------------------------------------------------
    def start(self, workflow: WorkflowRef, /, *args: Any, owner: str | None = None,
              tags: Iterable[str] | None = (), deadline: float | timedelta | None = None,
              inputs: Mapping[str, Any] | None = None, run_id: str | uuid.UUID | None = None,
              **kwargs: Any) -> RunHandle:
        """Record a new run (committed before any step runs) and execute it on a thread.

        Workflow arguments follow the workflow; ``owner``, ``tags``, ``deadline``,
        ``inputs`` and ``run_id`` are options. A workflow whose own parameters use those
        names takes its arguments as ``inputs={...}``. ``run_id`` (a UUID) chooses the
        run's id: when a run of this workflow and owner already has it, nothing new is
        recorded or executed and the handle (``created`` False) is on that run; a run of
        another workflow or owner with that id raises ``RunIdConflict``.

        Example: ``ledger.start(triage, 42, run_id="0190a6f2-8c1e-7cc1-9f55-2d3a8b0e4c11")``
        """
        prepared = self._create(workflow, args, kwargs, owner, tags, deadline, inputs, run_id)
        if isinstance(prepared, str):
            return RunHandle(self, prepared, created=False)
        return self._launch(prepared)

    def run(self, workflow: WorkflowRef, /, *args: Any, owner: str | None = None,
            tags: Iterable[str] | None = (), deadline: float | timedelta | None = None,
            inputs: Mapping[str, Any] | None = None, run_id: str | uuid.UUID | None = None,
            **kwargs: Any) -> Any:
        """Start a run and wait for its output, executing it in this thread.

        Raises ``RunFailed`` (with ``run_id`` and the original error as ``__cause__``).
        With ``run_id`` naming a run of this workflow that exists already, that run is
        not executed again: its outcome is waited for and returned (see ``start``).
        """
        if definition_of(workflow).is_async:
            _refuse_inside_event_loop()
        prepared = self._create(workflow, args, kwargs, owner, tags, deadline, inputs, run_id)
        if isinstance(prepared, str):
            return self.result(prepared)
        try:
            return self.execute(prepared)
        except RunInterrupted:  # another process took the run over: its outcome stands
            return self.result(prepared.execution.run_id)

    async def run_async(self, workflow: WorkflowRef, /, *args: Any, owner: str | None = None,
                        tags: Iterable[str] | None = (), deadline: float | timedelta | None = None,
                        inputs: Mapping[str, Any] | None = None,
                        run_id: str | uuid.UUID | None = None, **kwargs: Any) -> Any:
        """Like ``run``, for callers already inside an event loop."""
        prepared = self._create(workflow, args, kwargs, owner, tags, deadline, inputs, run_id)
        if isinstance(prepared, str):
            return await asyncio_module().to_thread(self.result, prepared)
        execution, call_args, call_kwargs = prepared
        try:
            if execution.definition.is_async:
                return await execution.run_async(call_args, call_kwargs)
            return await asyncio_module().to_thread(execution.run_sync, call_args, call_kwargs)
        except RunInterrupted:  # another process took the run over: its outcome stands
            return await asyncio_module().to_thread(self.result, execution.run_id)

    def _create(self, workflow: WorkflowRef, args: Sequence[Any], kwargs: dict[str, Any],
                owner: str | None, tags: Iterable[str] | None, deadline: float | timedelta | None,
                inputs: Mapping[str, Any] | None,
                run_id: str | uuid.UUID | None = None) -> Prepared | str:
        """The new run's execution; with a ``run_id`` already recorded, that run's id."""
        definition = definition_of(workflow)
        chosen = runids.chosen(run_id)
        values, inputs_text = prepare_inputs(
            self._runtime, definition, args,
            validation.arguments_or_inputs(kwargs, args, inputs), convert=inputs is not None)
        seconds = validation.deadline_seconds(deadline, definition.deadline)
        now = ids.now_us()
        run = new_run(definition, self._owner_for(owner), self._runtime.serializer.name,
                      inputs_text, executor=self._runtime.identity, created_at=now,
                      deadline_at=None if seconds is None else now + int(seconds * 1_000_000),
                      tags=validation.tags(tags))
        if chosen is not None:
            run.id = chosen
            if not runids.create(self.store, run, definition, self.store.create_run):
                return str(chosen)
        else:
            self.store.create_run(run)
        call_args, call_kwargs = call_arguments(definition.signature, values)
        return Prepared(self._execution(run.id, run.lease_token or "", definition, [],
                                        run.deadline_at, run.owner, run.traceparent),
                        call_args, call_kwargs)

    # -- acting on existing runs ---------------------------------------------------
    def resume(self, run_id: str | uuid.UUID, *, force: bool = False,
               queue: str | None = None) -> RunHandle:
        """Continue a failed, cancelled, paused or crashed run from its first unfinished
        step. A waiting run raises ``RunWaiting``: a worker continues it when it is due.

        Completed steps return their recorded outputs; the rest run again. A completed
        run is not executed again: its handle returns the recorded output. ``force``
        resumes a run marked running by a process on another host (which cannot be
        checked for liveness from here). With ``queue`` a failed or cancelled run is
        not executed here but put back in that queue (``pending``) for a worker; a paused
        run goes back to its own queue (or ``queue``) if it was queued, else resumes here.

        Example: ``ledger.resume(run_id).result()`` or ``ledger.resume(run_id, queue="default")``
        """
        row = self._visible(run_id)
        if row.status == RunStatus.COMPLETED:
            return RunHandle(self, str(row.id), done_future(self._decoded_output(row)))
        if row.status == RunStatus.PAUSED:
            return self._unpause(row, queue)
        if row.status == RunStatus.WAITING:  # it continues by itself: nothing to resume
            raise RunWaiting(str(row.id), row.waiting_for, row.wake_at)
        if queue is not None:
            return self._requeue(row, queue)
        if row.status == RunStatus.RUNNING:
            alive = self._executor_alive(row)
            if alive or (alive is None and not force):
                where = "this host" if alive else "another host (pass force=True if it is gone)"
                raise RunAlreadyRunning(f"run {row.id} is being executed by process "
                                        f"{row.executor} on {where}")
        if row.inputs is not None:  # without its key, refuse before taking the run over
            readable(row.inputs, f"input payload of run {row.id}")
        return self._launch(self._takeover(row))

    def _unpause(self, row: RunRow, queue: str | None) -> RunHandle:
        """A paused run continues: a queued one (or with ``queue``) goes back to its queue,
        one started in a process resumes here."""
        if row.lease_token is not None and self._executor_alive(row) is not False:
            raise RunAlreadyRunning(f"run {row.id} is pausing: its execution is finishing "
                                    "the step in flight; resume it once that is recorded")
        target = queue or row.queue
        if target is not None:
            if not self.store.unpause_to_queue(row.id, queue_name(target)):
                raise RunAlreadyRunning(f"run {row.id} is no longer paused")
            return RunHandle(self, str(row.id))
        return self._launch(self._takeover(row))

    def pause(self, run_id: str | uuid.UUID, *, reason: str | None = None,
              by: str | None = None) -> bool:
        """Pause a pending, running or waiting run, from any process: it is claimed no
        more, and a running one stops before its next step (the step in flight finishes and is
        recorded), then holds no worker and no lease. ``resume`` continues it. Records
        when, ``reason`` and ``by`` (default: this Ledger's owner, or this process).
        Returns False when the run had already finished or was paused.

        Example: ``ledger.pause(run_id, reason="waiting for the new API key")``
        """
        if reason is not None and not 1 <= len(reason) <= 500:
            raise ConfigurationError("a pause reason has 1 to 500 characters")
        who = validation.name(by or self.owner or self._runtime.identity, "by")
        before = self.store.pause_run(self.run_uuid(run_id), self.owner, ids.now_us(),
                                      reason, who)
        if before is None:
            raise RunNotFound(str(run_id))
        return before in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING)

    def _executor_alive(self, row: RunRow) -> bool | None:
        """Whether the run's executor still executes it (None: another host, unknown)."""
        if row.executor == self._runtime.identity:
            return executing_here(row.id)
        return ids.is_alive_here(row.executor)

    def _takeover(self, row: RunRow) -> Prepared:
        definition = self.workflow_of(row)  # before claiming: a mismatch changes nothing
        refuse_redacted(row.inputs, f"run {row.id}")  # so is a run that cannot resume
        recorded = self.store.get_steps(row.id)
        token = ids.new_token()
        if not self.store.claim_run(row.id, row.lease_token, token, self._runtime.identity,
                                    ids.now_us(), resume_position(recorded)):
            raise RunAlreadyRunning(f"run {row.id} was just taken over by another process")
        return self.prepare(row, token, recorded, definition)

    def fork(self, run_id: str | uuid.UUID, from_position: int,
             inputs: Mapping[str, Any] | None = None, *,
             queue: str | None = None, workflow: WorkflowRef | None = None) -> RunHandle:
        """A new run that reuses the source's steps before ``from_position`` and runs on.

        ``inputs`` overrides some or all of the source's inputs. Lineage is recorded
        as ``forked_from`` / ``forked_from_position``. With ``queue`` the fork is queued
        (``pending``) for a worker instead of executed here. ``workflow`` runs the fork
        with other code of the same name — an edited spec (``fl.load_spec``), say — instead
        of the source's; the reused steps must be the ones it calls at those positions.

        Example: ``ledger.fork(run_id, 3, inputs={"model": "gpt-4.1"}).result()``
        """
        source = self._visible(run_id)
        last = max((row.position for row in self.store.get_steps(source.id)), default=0)
        if not 1 <= from_position <= last + 1:
            raise ConfigurationError(f"the fork position (from_position, --from-step) must "
                                     f"be between 1 and {last + 1} for run {source.id} "
                                     f"(it has {last} recorded steps), not {from_position}")
        definition = self.code_of(source) if workflow is None else definition_of(workflow)
        if definition.name != source.workflow:
            raise ConfigurationError(f"run {source.id} is a run of {source.workflow!r}; a "
                                     f"fork of it cannot run {definition.name!r}")
        values = decode_inputs(self._runtime.serializer, source.inputs, definition.fn,
                               what=f"a fork of run {source.id}", supplied=set(inputs or ()))
        unknown = set(inputs or {}) - set(definition.signature.parameters)
        if unknown:
            raise ConfigurationError(f"workflow {definition.name!r} has no parameter(s) "
                                     f"{', '.join(sorted(unknown))}")
        try:
            values.update(coerce_inputs(definition.fn, inputs or {}))
        except ConfigurationError as exc:
            raise ConfigurationError(f"workflow {definition.name!r}: {exc}") from None
        queued = queue is not None
        inputs_text = encode_inputs(self._runtime, definition, values, queued=queued)
        now = ids.now_us()
        run = new_run(definition, source.owner, self._runtime.serializer.name, inputs_text,
                      executor=None if queued else self._runtime.identity, created_at=now,
                      deadline_at=(None if source.deadline_at is None
                                   else now + source.deadline_at - source.created_at),
                      forked_from=source.id, forked_from_position=from_position,
                      tags=source.tags, queue=None if queue is None else queue_name(queue))
        self.store.create_run(run, copy_steps_before=from_position)
        if queued:
            return RunHandle(self, str(run.id))
        args, kwargs = call_arguments(definition.signature, values)
        execution = self._execution(run.id, run.lease_token or "", definition,
                                    self.store.get_steps(run.id), run.deadline_at, run.owner,
                                    run.traceparent)
        return self._launch(Prepared(execution, args, kwargs))

    def cancel(self, run_id: str | uuid.UUID) -> bool:
        """Cancel a pending or running run (and its child runs), from any process.

        The run is marked cancelled at once; its workflow stops before its next step.
        Returns False if the run had already finished.
        """
        result = self.store.cancel_run(self.run_uuid(run_id), self.owner, ids.now_us())
        if result is None:
            raise RunNotFound(str(run_id))
        return result

    def recover(self, *, on_error: Callable[[str, FlowledgerError], None] | None = None
                ) -> list[RunHandle]:
        """Resume every run left ``running`` by a process on this host that has died.

        Child runs are resumed through their parent, except a child whose parent has
        ended (started with ``fl.start_child`` and not waited for): it is resumed here.

        A run that cannot be taken up here (its code cannot be loaded, its version
        changed) is skipped — with a logged warning, or reported to ``on_error(run_id,
        error)`` — and stays ``running``, so a later ``recover`` or ``resume`` can still
        pick it up.

        Example: ``for handle in ledger.recover(): handle.result()``
        """
        handles = []
        for row in self.store.running_runs(ids.hostname() + ":"):
            if self.owner and row.owner != self.owner:
                continue
            if row.parent_id is not None and not self._parent_finished(row.parent_id):
                continue  # child runs are resumed by their parent, unless it has ended
            if row.lease_expires_at is not None:
                continue  # a worker holds it: workers take it over when the lease expires
            if self._executor_alive(row) is not False:
                continue
            try:
                prepared = self._takeover(row)
            except RunAlreadyRunning:
                continue  # another process recovered it first
            except FlowledgerError as exc:
                if on_error is None:
                    log.warning("cannot recover run %s: %s", row.id, exc)
                else:
                    on_error(str(row.id), exc)
                continue
            handles.append(self._launch(prepared))
        return handles

    def _parent_finished(self, parent_id: uuid.UUID) -> bool:
        """Whether a child's parent has ended (a ``fl.start_child`` child it did not wait
        for): such a child is recovered on its own."""
        parent = self.store.get_run(parent_id, None)
        return parent is not None and RunStatus(parent.status).finished

    def schema_revision(self) -> str | None:
        """The store's schema revision; a cheap round trip that raises StoreUnavailable
        when the database cannot be reached (readiness checks use it)."""
        current, _ = self.store.schema_revision()
        return current

    def flush_spool(self) -> int:
        """Write records spooled during a store outage back (``persistence="best_effort"``).

        Returns how many were written; raises StoreUnavailable if the store is still
        down. A no-op returning 0 with ``persistence="required"``.
        """
        if isinstance(self.store, SpoolingStore):
            return self.store.flush_spool()
        return 0

def _refuse_inside_event_loop() -> None:
    try:
        asyncio_module().get_running_loop()
    except RuntimeError:
        return
    raise ConfigurationError("an event loop is running here: use "
                             "`await ledger.run_async(...)` or ledger.start(...)")
