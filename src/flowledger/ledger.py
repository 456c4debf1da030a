"""The Ledger: the one place that starts, resumes, cancels and queries runs.

Every interface (Python API today; the CLI and HTTP API build on it) calls these methods.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from . import ids
from .artifacts import ArtifactStore, RunArtifacts
from .errors import (
    AmbiguousRunId,
    ConfigurationError,
    FlowledgerError,
    InvalidCursor,
    RunAlreadyRunning,
    RunCancelled,
    RunFailed,
    RunNotFound,
    WorkflowVersionMismatch,
)
from .executor import (
    Execution,
    Runtime,
    encode_inputs,
    executing_here,
    prepare_inputs,
    resolve,
    resume_position,
)
from .models import (
    ErrorInfo,
    Run,
    RunPage,
    RunStatus,
    UsageGroup,
    UsageTotals,
)
from .records import Records
from .reports import RunDiff, Stats, compute_stats, diff_runs
from .retention import FINISHED, PurgeReport, iter_runs, purge
from .serialization import (
    NO_HINT,
    JsonSerializer,
    Serializer,
    call_arguments,
    decode_inputs,
)
from .store import NewRun, RunFilter, RunRow, SqlStore, StepRow, UsageRow
from .store.dialects import Durability, SqliteBackend
from .store.spool import SpoolingStore
from .workflow import WorkflowDef, definition_of

log = logging.getLogger("flowledger")
DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024
DEFAULT_OFFLOAD = 1024 * 1024
DEFAULT_OWNER = "default"
WorkflowRef = Callable[..., Any] | WorkflowDef


def default_artifacts_url(store: SqlStore) -> str:
    """A folder beside the SQLite file (``ledger.db`` → ``ledger-artifacts/``); for
    PostgreSQL a folder per database under ``~/.flowledger/artifacts/`` — the same from
    any working directory of this user. Set ``artifacts=`` (e.g. ``s3://bucket/prefix``)
    to share one store between machines."""
    backend = store.backend
    if isinstance(backend, SqliteBackend):
        return str(backend.path.with_name(backend.path.stem + "-artifacts"))
    database = hashlib.sha256(backend.describe().encode()).hexdigest()[:16]
    return str(Path.home() / ".flowledger" / "artifacts" / database)


def default_url() -> str:
    """The embedded default: ``./.flowledger/flowledger.db`` in the working directory."""
    return f"sqlite:///{Path.cwd() / '.flowledger' / 'flowledger.db'}"


def _deadline_seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ConfigurationError("deadline must be positive")
    return seconds


def _micros(value: datetime | timedelta | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return ids.now_us() - int(value.total_seconds() * 1_000_000)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigurationError(f"{name} must be timezone-aware (e.g. datetime.now(UTC))")
        return int(value.timestamp() * 1_000_000)
    raise ConfigurationError(f"{name} must be a datetime or a timedelta, not {value!r}")


def encode_cursor(run_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(run_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, binascii.Error, TypeError):
        raise InvalidCursor(f"invalid cursor {cursor!r}: pass next_cursor from a previous "
                            "page unchanged") from None


class RunHandle:
    """A started run. ``result()`` waits for it; ``status()`` reads the store.

    Example::

        handle = ledger.start(triage, 42)
        print(handle.id, handle.status())
        output = handle.result(timeout=60)
    """

    def __init__(self, ledger: Ledger, run_id: str, future: Future[Any] | None = None) -> None:
        self.ledger = ledger
        self.id = run_id
        self._future = future

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"

    def status(self) -> RunStatus:
        return self.ledger.get(self.id, steps=False).status

    def get(self) -> Run:
        return self.ledger.get(self.id)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the run to end; True if it has."""
        if self._future is not None:
            try:
                self._future.exception(timeout)
            except TimeoutError:
                return False
            return True
        try:
            self.ledger._wait_for_output(self.id, timeout)
        except TimeoutError:
            return False
        except FlowledgerError:
            pass
        return True

    def done(self) -> bool:
        if self._future is not None:
            return self._future.done()
        return self.status().finished

    def result(self, timeout: float | None = None) -> Any:
        """The run's output; raises RunFailed / RunCancelled (both carry ``run_id``)."""
        if self._future is not None:
            return self._future.result(timeout)
        return self.ledger._wait_for_output(self.id, timeout)


class Ledger:
    """Runs workflows durably and answers questions about them.

    ``url`` is ``sqlite:///path.db`` or ``postgresql://user@host/db``; without it the
    ``FLOWLEDGER_DATABASE_URL`` environment variable is used, else an embedded SQLite file
    under ``./.flowledger/``. Migrations are applied on open. A Ledger opened with
    ``owner=`` sees and creates only that owner's runs.

    Example::

        ledger = fl.Ledger()
        output = ledger.run(triage, 42)
        run = ledger.get(ledger.runs(workflow="triage", limit=1).runs[0].id)
    """

    def __init__(self, url: str | None = None, *, owner: str | None = None,
                 durability: Durability = "full", serializer: Serializer | None = None,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD, artifacts: str | None = None,
                 offload_bytes: int = DEFAULT_OFFLOAD,
                 persistence: Literal["required", "best_effort"] = "required",
                 spool_dir: str | None = None) -> None:
        self.url = url or os.environ.get("FLOWLEDGER_DATABASE_URL") or default_url()
        if max_payload_bytes <= 0 or offload_bytes <= 0:
            raise ConfigurationError("max_payload_bytes and offload_bytes must be positive")
        if persistence not in ("required", "best_effort"):
            raise ConfigurationError(f"persistence must be 'required' or 'best_effort', "
                                     f"not {persistence!r}")
        self.owner = owner
        self.persistence = persistence
        self.store: SqlStore = (
            SpoolingStore(self.url, durability=durability,
                          spool_dir=spool_dir or str(Path.cwd() / ".flowledger" / "spool"))
            if persistence == "best_effort" else SqlStore(self.url, durability=durability))
        self.artifacts_url = (artifacts or os.environ.get("FLOWLEDGER_ARTIFACTS_URL")
                              or default_artifacts_url(self.store))
        self._runtime = Runtime(self.store, serializer or JsonSerializer(), max_payload_bytes,
                                ids.identity(), ArtifactStore(self.artifacts_url),
                                offload_bytes)
        self._records = Records(self._runtime.serializer, self._runtime.payload)
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        """Wait for the runs this Ledger started on threads, then release connections."""
        with self._threads_lock:
            running = list(self._threads)
        for thread in running:
            thread.join()
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- starting runs -------------------------------------------------------------
    def start(self, workflow: WorkflowRef, /, *args: Any, owner: str | None = None,
              tags: Iterable[str] = (), deadline: float | timedelta | None = None,
              inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> RunHandle:
        """Record a new run (committed before any step runs) and execute it on a thread.

        Workflow arguments follow the workflow; ``owner``, ``tags``, ``deadline`` and
        ``inputs`` are options. A workflow whose own parameters use those names takes
        its arguments as ``inputs={...}``.
        """
        execution, call_args, call_kwargs = self._create(workflow, args, kwargs, owner, tags,
                                                         deadline, inputs)
        return self._launch(execution, call_args, call_kwargs)

    def run(self, workflow: WorkflowRef, /, *args: Any, owner: str | None = None,
            tags: Iterable[str] = (), deadline: float | timedelta | None = None,
            inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """Start a run and wait for its output, executing it in this thread.

        Raises ``RunFailed`` (with ``run_id`` and the original error as ``__cause__``).
        """
        if definition_of(workflow).is_async:
            _refuse_inside_event_loop()
        execution, call_args, call_kwargs = self._create(workflow, args, kwargs, owner, tags,
                                                         deadline, inputs)
        return self._execute(execution, call_args, call_kwargs)

    async def run_async(self, workflow: WorkflowRef, /, *args: Any, owner: str | None = None,
                        tags: Iterable[str] = (), deadline: float | timedelta | None = None,
                        inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``run``, for callers already inside an event loop."""
        execution, call_args, call_kwargs = self._create(workflow, args, kwargs, owner, tags,
                                                         deadline, inputs)
        if execution.definition.is_async:
            return await execution.run_async(call_args, call_kwargs)
        return await asyncio.to_thread(execution.run_sync, call_args, call_kwargs)

    def _create(self, workflow: WorkflowRef, args: Sequence[Any], kwargs: dict[str, Any],
                owner: str | None, tags: Iterable[str], deadline: float | timedelta | None,
                inputs: Mapping[str, Any] | None) -> tuple[Execution, list[Any], dict[str, Any]]:
        definition = definition_of(workflow)
        if inputs is not None:
            if args or kwargs:
                raise ConfigurationError("pass workflow arguments either directly or as "
                                         "inputs={...}, not both")
            kwargs = dict(inputs)
        values, inputs_text = prepare_inputs(self._runtime, definition, args, kwargs)
        seconds = _deadline_seconds(deadline)
        if seconds is None:
            seconds = definition.deadline
        now = ids.now_us()
        run = NewRun(
            id=ids.new_run_id(), workflow=definition.name, version=definition.version,
            entrypoint=definition.entrypoint, owner=self._owner_for(owner), status="running",
            serializer=self._runtime.serializer.name, inputs=inputs_text, created_at=now,
            executor=self._runtime.identity, lease_token=ids.new_token(),
            deadline_at=None if seconds is None else now + int(seconds * 1_000_000),
            tags=_clean_tags(tags),
        )
        self.store.create_run(run)
        call_args, call_kwargs = call_arguments(definition.signature, values)
        return self._execution(run.id, run.lease_token or "", definition, [],
                               run.deadline_at, run.owner), call_args, call_kwargs

    def _owner_for(self, owner: str | None) -> str:
        if self.owner is not None and owner not in (None, self.owner):
            raise ConfigurationError(f"this Ledger acts for owner {self.owner!r} only")
        chosen = owner or self.owner or DEFAULT_OWNER
        if len(chosen) > 200 or not chosen.strip():
            raise ConfigurationError("owner must be 1-200 characters")
        return chosen

    def _execution(self, run_id: uuid.UUID, token: str, definition: WorkflowDef,
                   recorded: Sequence[StepRow], deadline_at: int | None,
                   owner: str) -> Execution:
        context = self._context(run_id) if recorded else None
        return Execution(self._runtime, run_id, token, definition, recorded, deadline_at, owner,
                         context)

    def _context(self, run_id: uuid.UUID) -> dict[str, Any]:
        serializer = self._runtime.serializer
        return {name: None if value is None else serializer.loads(value)
                for name, value, _, _ in self.store.context_of(run_id)}

    @staticmethod
    def _execute(execution: Execution, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if not execution.definition.is_async:
            return execution.run_sync(args, kwargs)
        return asyncio.run(execution.run_async(args, kwargs))

    def _launch(self, execution: Execution, args: list[Any],
                kwargs: dict[str, Any]) -> RunHandle:
        future: Future[Any] = Future()

        def target() -> None:
            try:
                future.set_result(self._execute(execution, args, kwargs))
            except BaseException as exc:
                future.set_exception(exc)
            finally:
                with self._threads_lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=target, name=f"flowledger-run-{execution.run_id_text}")
        with self._threads_lock:
            self._threads.add(thread)
        thread.start()
        return RunHandle(self, execution.run_id_text, future)

    # -- acting on existing runs ---------------------------------------------------
    def resume(self, run_id: str | uuid.UUID, *, force: bool = False) -> RunHandle:
        """Continue a failed, cancelled or crashed run from its first unfinished step.

        Completed steps return their recorded outputs; the rest run again. A completed
        run is not executed again: its handle returns the recorded output. ``force``
        resumes a run marked running by a process on another host (which cannot be
        checked for liveness from here).
        """
        row = self._visible(run_id)
        if row.status == RunStatus.COMPLETED:
            return RunHandle(self, str(row.id), _done_future(self._decoded_output(row)))
        if row.status == RunStatus.RUNNING:
            alive = self._executor_alive(row)
            if alive or (alive is None and not force):
                where = "this host" if alive else "another host (pass force=True if it is gone)"
                raise RunAlreadyRunning(f"run {row.id} is being executed by process "
                                        f"{row.executor} on {where}")
        execution, args, kwargs = self._takeover(row)
        return self._launch(execution, args, kwargs)

    def _executor_alive(self, row: RunRow) -> bool | None:
        """Whether the run's executor still executes it (None: another host, unknown)."""
        if row.executor == self._runtime.identity:
            return executing_here(row.id)
        return ids.is_alive_here(row.executor)

    def _takeover(self, row: RunRow) -> tuple[Execution, list[Any], dict[str, Any]]:
        definition = resolve(row.workflow, row.entrypoint)
        if definition.version != row.version:
            raise WorkflowVersionMismatch(
                f"run {row.id} was recorded with {row.workflow!r} version {row.version!r}, "
                f"the code is version {definition.version!r}; fork the run to continue it "
                "on the new version")
        recorded = self.store.get_steps(row.id)
        token = ids.new_token()
        if not self.store.claim_run(row.id, row.lease_token, token, self._runtime.identity,
                                    ids.now_us(), resume_position(recorded)):
            raise RunAlreadyRunning(f"run {row.id} was just taken over by another process")
        values = decode_inputs(self._runtime.serializer, row.inputs, definition.fn)
        args, kwargs = call_arguments(definition.signature, values)
        return (self._execution(row.id, token, definition, recorded, row.deadline_at,
                                row.owner), args, kwargs)

    def fork(self, run_id: str | uuid.UUID, from_position: int,
             inputs: Mapping[str, Any] | None = None) -> RunHandle:
        """A new run that reuses the source's steps before ``from_position`` and runs on.

        ``inputs`` overrides some or all of the source's inputs. Lineage is recorded
        as ``forked_from`` / ``forked_from_position``.
        """
        source = self._visible(run_id)
        last = max((row.position for row in self.store.get_steps(source.id)), default=0)
        if not 1 <= from_position <= last + 1:
            raise ConfigurationError(f"from_position must be between 1 and {last + 1} for "
                                     f"run {source.id} (it has {last} recorded steps)")
        definition = resolve(source.workflow, source.entrypoint)
        values = decode_inputs(self._runtime.serializer, source.inputs, definition.fn)
        unknown = set(inputs or {}) - set(definition.signature.parameters)
        if unknown:
            raise ConfigurationError(f"workflow {definition.name!r} has no parameter(s) "
                                     f"{', '.join(sorted(unknown))}")
        values.update(inputs or {})
        inputs_text = encode_inputs(self._runtime, definition, values)
        now = ids.now_us()
        run = NewRun(
            id=ids.new_run_id(), workflow=definition.name, version=definition.version,
            entrypoint=definition.entrypoint, owner=source.owner, status="running",
            serializer=self._runtime.serializer.name, inputs=inputs_text, created_at=now,
            executor=self._runtime.identity, lease_token=ids.new_token(),
            deadline_at=(None if source.deadline_at is None
                         else now + source.deadline_at - source.created_at),
            forked_from=source.id, forked_from_position=from_position, tags=source.tags,
        )
        self.store.create_run(run, copy_steps_before=from_position)
        args, kwargs = call_arguments(definition.signature, values)
        execution = self._execution(run.id, run.lease_token or "", definition,
                                    self.store.get_steps(run.id), run.deadline_at, run.owner)
        return self._launch(execution, args, kwargs)

    def cancel(self, run_id: str | uuid.UUID) -> bool:
        """Cancel a pending or running run (and its child runs), from any process.

        The run is marked cancelled at once; its workflow stops before its next step.
        Returns False if the run had already finished.
        """
        parsed = ids.parse_run_id(run_id)
        result = None if parsed is None else self.store.cancel_run(parsed, self.owner,
                                                                    ids.now_us())
        if result is None:
            raise RunNotFound(str(run_id))
        return result

    def recover(self) -> list[RunHandle]:
        """Resume every run left ``running`` by a process on this host that has died.

        A run whose code cannot be loaded here is skipped with a logged warning (it
        stays ``running``, so a later ``recover`` or ``resume`` can still pick it up).
        """
        handles = []
        for row in self.store.running_runs(ids.hostname() + ":"):
            if row.parent_id is not None or (self.owner and row.owner != self.owner):
                continue  # child runs are resumed by their parent
            if self._executor_alive(row) is not False:
                continue
            try:
                execution, args, kwargs = self._takeover(row)
            except RunAlreadyRunning:
                continue  # another process recovered it first
            except FlowledgerError as exc:
                log.warning("cannot recover run %s: %s", row.id, exc)
                continue
            handles.append(self._launch(execution, args, kwargs))
        return handles

    def handle(self, run_id: str | uuid.UUID) -> RunHandle:
        """A handle on an existing run, e.g. to wait for it from another process."""
        return RunHandle(self, str(self._visible(run_id).id))

    # -- queries -------------------------------------------------------------------
    def get(self, run_id: str | uuid.UUID, *, steps: bool = True) -> Run:
        """The run with its steps in position order. Raises RunNotFound."""
        parsed = ids.parse_run_id(run_id)
        if parsed is None:
            raise RunNotFound(str(run_id))
        if not steps:
            row = self.store.get_run(parsed, self.owner)
            if row is None:
                raise RunNotFound(str(run_id))
            return self._to_run(row, None)
        found = self.store.get_run_with_steps(parsed, self.owner)
        if found is None:
            raise RunNotFound(str(run_id))
        family = [parsed, *self.store.descendants(parsed)]
        run = self._records.run(*found, usage=self.store.usage_of(family))
        return replace(run, context=self._context(parsed))

    def runs(self, *, status: str | Iterable[str] | None = None, workflow: str | None = None,
             owner: str | None = None, tag: str | None = None,
             since: datetime | timedelta | None = None,
             until: datetime | timedelta | None = None, parent: str | None = None,
             limit: int = 50, cursor: str | None = None) -> RunPage:
        """Runs newest first, filtered, one page at a time (keyset pagination).

        ``since`` is inclusive and ``until`` exclusive; a timedelta means "that long
        ago". Pass each page's ``next_cursor`` back to get the next one; it is None on
        the last page (``cursor=None`` starts again from the newest).
        Example: ``ledger.runs(status="failed", since=timedelta(hours=2))``.
        """
        if not 1 <= limit <= 1000:
            raise ConfigurationError("limit must be between 1 and 1000")
        flt = self._filter(status, workflow, owner, tag, since, until, parent)
        rows = self.store.list_runs(flt, limit + 1,
                                    decode_cursor(cursor) if cursor else None)
        more = len(rows) > limit
        rows = rows[:limit]
        live = self.store.live_step_counts([r.id for r in rows
                                            if not RunStatus(r.status).finished])
        runs = tuple(self._to_run(r, None, live.get(r.id)) for r in rows)
        return RunPage(runs, encode_cursor(rows[-1].id) if more and rows else None)

    def resolve_id(self, prefix: str) -> str:
        """The full id of the one run whose id starts with ``prefix`` (like git).

        Raises RunNotFound when none matches, AmbiguousRunId when several do.
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

    def diff(self, run_a: str | uuid.UUID, run_b: str | uuid.UUID) -> RunDiff:
        """Compare two runs position by position: status, duration and output changes."""
        return diff_runs(self.get(run_a), self.get(run_b))

    def stats(self, *, workflow: str | None = None,
              since: datetime | timedelta | None = None,
              until: datetime | timedelta | None = None) -> Stats:
        """Per workflow: runs, success rate, p50/p95 duration, LLM tokens and cost; per
        step name: count, failure rate, p50/p95. Example:
        ``ledger.stats(since=timedelta(days=1))``."""
        flt = RunFilter(owner=self.owner, workflow=workflow, since=_micros(since, "since"),
                        until=_micros(until, "until"))
        usage = {str(row[0]): (int((row[2] or 0) + (row[3] or 0)),
                               None if row[6] is None else float(row[6]))
                 for row in self.store.usage_groups(flt, None, None, "workflow")}
        return compute_stats(*self.store.timing_rows(flt), usage)

    def usage(self, *, since: datetime | timedelta | None = None,
              until: datetime | timedelta | None = None, group_by: str = "workflow",
              workflow: str | None = None, owner: str | None = None) -> list[UsageGroup]:
        """LLM usage and cost totals per workflow, model or owner, for calls recorded in
        the window. Example: ``ledger.usage(since=timedelta(days=1), group_by="model")``."""
        if group_by not in ("workflow", "model", "owner"):
            raise ConfigurationError(f"group_by must be workflow, model or owner, "
                                     f"not {group_by!r}")
        flt = self._filter(None, workflow, owner, None, None, None, None)
        groups = []
        for key, calls, inp, out, cached, reasoning, cost, unpriced in self.store.usage_groups(
                flt, _micros(since, "since"), _micros(until, "until"), group_by):
            groups.append(UsageGroup(str(key), UsageTotals(
                int(calls), int(inp or 0), int(out or 0), int(cached or 0), int(reasoning or 0),
                None if cost is None else float(cost), int(unpriced or 0),
                (str(key),) if group_by == "model" else ())))
        return groups

    def export(self, run_id: str | uuid.UUID | None = None, *,
               status: str | Iterable[str] | None = None, workflow: str | None = None,
               owner: str | None = None, tag: str | None = None,
               since: datetime | timedelta | None = None,
               until: datetime | timedelta | None = None) -> Iterator[Run]:
        """Runs with their steps, newest first, streamed in batches (constant memory).

        Example: ``for run in ledger.export(workflow="triage"): print(run.to_dict())``
        """
        if run_id is not None:
            yield self.get(run_id)
            return
        flt = self._filter(status, workflow, owner, tag, since, until, None)
        yield from iter_runs(self.store, flt, self._full_runs)

    def purge(self, older_than: timedelta, *, status: str | Iterable[str] | None = None,
              archive: str | None = None, dry_run: bool = False,
              progress: Callable[[int], None] | None = None) -> PurgeReport:
        """Delete finished runs created more than ``older_than`` ago, with their steps.

        ``status`` narrows to some final states; ``archive`` first writes every purged
        run with its steps to a ``.jsonl.gz`` file. Runs still pending or running are
        never purged. Example: ``ledger.purge(timedelta(days=90), archive="old.jsonl.gz")``
        """
        if older_than.total_seconds() < 0:
            raise ConfigurationError("older_than must not be negative")
        statuses = _statuses(status) or list(FINISHED)
        active = [s for s in statuses if s not in FINISHED]
        if active:
            raise ConfigurationError(f"only finished runs can be purged, not {active[0]!r}")
        flt = RunFilter(owner=self.owner, status=statuses,
                        until=ids.now_us() - int(older_than.total_seconds() * 1_000_000))
        return purge(self.store, flt, self._full_runs, archive=archive, dry_run=dry_run,
                     blobs=self._runtime.artifacts, progress=progress)

    def flush_spool(self) -> int:
        """Write records spooled during a store outage back (``persistence="best_effort"``).

        Returns how many were written; raises StoreUnavailable if the store is still
        down. A no-op returning 0 with ``persistence="required"``.
        """
        if isinstance(self.store, SpoolingStore):
            return self.store.flush_spool()
        return 0

    def artifacts(self, run_id: str | uuid.UUID) -> RunArtifacts:
        """The artifacts of a run: ``save``, ``get``, ``read_bytes``, ``exists``, ``list``,
        ``delete``. Example: ``ledger.artifacts(run_id).get("report.md")``"""
        row = self._visible(run_id)
        assert self._runtime.artifacts is not None
        return RunArtifacts(self.store, self._runtime.artifacts, row.id, row.owner)

    def _filter(self, status: str | Iterable[str] | None, workflow: str | None,
                owner: str | None, tag: str | None, since: datetime | timedelta | None,
                until: datetime | timedelta | None, parent: str | None) -> RunFilter:
        statuses = _statuses(status)
        parent_id = None
        if parent is not None:
            parent_id = ids.parse_run_id(parent)
            if parent_id is None:
                raise RunNotFound(parent)
        scope = self.owner or owner
        if self.owner is not None and owner not in (None, self.owner):
            scope = "#" * 201  # another owner's runs from a scoped Ledger: no valid owner
        return RunFilter(owner=scope, status=statuses, workflow=workflow,
                         tag=tag, since=_micros(since, "since"), until=_micros(until, "until"),
                         parent_id=parent_id)

    def _visible(self, run_id: str | uuid.UUID) -> RunRow:
        parsed = ids.parse_run_id(run_id)
        row = None if parsed is None else self.store.get_run(parsed, self.owner)
        if row is None:
            raise RunNotFound(str(run_id))
        return row

    def _wait_for_output(self, run_id: str, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        while True:
            row = self._visible(run_id)
            if row.status == RunStatus.COMPLETED:
                return self._decoded_output(row)
            if row.status == RunStatus.CANCELLED:
                raise RunCancelled(run_id)
            if row.status == RunStatus.FAILED:
                error = ErrorInfo.from_dict(json.loads(row.error or "{}"))
                raise RunFailed(run_id, error.type if error else "?",
                                error.message if error else "")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} still {row.status} after {timeout}s")
            time.sleep(delay)  # polling another process's run: no in-process signal exists
            delay = min(delay * 2, 0.5)

    def _decoded_output(self, row: RunRow) -> Any:
        if row.output is None:
            return None
        from .workflow import registered

        definition = registered(row.workflow)
        hint = definition.return_hint if definition else NO_HINT
        return self._runtime.serializer.loads(row.output, hint)

    def _to_run(self, row: RunRow, steps: list[StepRow] | None,
                live: tuple[int, int, int, int] | None = None) -> Run:
        return self._records.run(row, steps, live)

    def _full_runs(self, rows: list[RunRow]) -> list[Run]:
        """Runs with steps, their own usage and context, for exports and archives."""
        ids_ = [row.id for row in rows]
        steps = self.store.steps_of(ids_)
        usage: dict[uuid.UUID, list[UsageRow]] = {run_id: [] for run_id in ids_}
        for record in self.store.usage_of(ids_):
            usage[record.run_id].append(record)
        contexts = self.store.contexts_of(ids_)
        serializer = self._runtime.serializer
        return [replace(self._records.run(row, steps[row.id], usage=usage[row.id]),
                        context={name: None if value is None else serializer.loads(value)
                                 for name, value in contexts[row.id].items()})
                for row in rows]


def _statuses(status: str | Iterable[str] | None) -> list[str]:
    statuses = [status] if isinstance(status, str) else list(status or ())
    for value in statuses:
        if value not in RunStatus.__members__.values():
            raise ConfigurationError(f"unknown status {value!r}; expected one of "
                                     f"{', '.join(s.value for s in RunStatus)}")
    return statuses


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        tags = [tags]
    cleaned = tuple(sorted({str(tag).strip() for tag in tags}))
    for tag in cleaned:
        if not tag or len(tag) > 200:
            raise ConfigurationError(f"tags must be 1-200 characters, got {tag!r}")
    return cleaned


def _refuse_inside_event_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ConfigurationError("an event loop is running here: use "
                             "`await ledger.run_async(...)` or ledger.start(...)")


def _done_future(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future
