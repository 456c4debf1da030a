"""``SqlStore``: the one Store implementation, for SQLite and PostgreSQL (SQLAlchemy Core)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from ..encryption import Keyring
from ..errors import ConfigurationError, LeaseNotHeld
from . import history
from .api_tokens import StoreTokens
from .dialects import Durability
from .keys import StoreKeys
from .metrics import StoreMetrics
from .progress import StoreProgress
from .queues import StoreQueues
from .ratelimits import StoreRateLimits
from .reads import StoreReads
from .retention import StoreRetention
from .rows import ArtifactRow, LeaseHold, NewRun, UsageRow
from .sealing import Sealing, context_aad, run_aad, step_aad
from .snapshots import StoreSnapshots
from .specs import StoreSpecs
from .statements import artifacts as artifacts_sql
from .statements import bulk as bulk_sql
from .statements import context as context_sql
from .statements import logs as logs_sql
from .statements import runs as runs_sql
from .statements import steps as steps_sql
from .summaries import StoreSummaries
from .translate import store_error
from .waits import StoreWaits
from .webhooks import StoreWebhooks


class SqlStore(StoreReads, StoreSnapshots, StoreSummaries, StoreQueues, StoreTokens,
               StoreProgress, StoreSpecs, StoreWaits, StoreWebhooks, StoreMetrics,
               StoreRateLimits, StoreKeys, StoreRetention):
    """Storage over SQLAlchemy Core. Open with a URL; migrations are applied on open.

    Example::

        store = SqlStore("sqlite:///runs.db")
    """

    def __init__(self, url: str, *, durability: Durability = "full",
                 migrate_schema: bool = True, create: bool = True,
                 keyring: Keyring | None = None) -> None:
        super().__init__(url, durability=durability, migrate_schema=migrate_schema,
                         create=create)
        if keyring is not None:
            self.sealing = Sealing(keyring, self)
        # The hot path's SQL, compiled once for this backend's driver.
        uuid_type = self.backend.uuid_sql_type
        self._begin_sql = self._compile_text(steps_sql.BEGIN_STEP.format(uuid=uuid_type))
        self._finish_sql = self._compile_text(steps_sql.FINISH_STEP)
        self._attempt_sql = self._compile_text(steps_sql.RECORD_FAILED_ATTEMPT)
        self._logs_sql = self._compile_text(logs_sql.RECORD_LOGS)
        self._artifact_sql = self._compile_text(
            steps_sql.SAVE_ARTIFACT.format(uuid=uuid_type))
        self._context_sql = self._compile_text(steps_sql.SET_CONTEXT.format(uuid=uuid_type))
        self._usage_sql = self._compile_text(steps_sql.RECORD_USAGE.format(
            uuid=uuid_type, float=self.backend.float_sql_type))
        self._usage_once_sql = self._compile_text(steps_sql.RECORD_USAGE_ONCE.format(
            uuid=uuid_type, float=self.backend.float_sql_type))
        self._begin_absolute_sql = self._compile_text(
            steps_sql.BEGIN_STEP_ABSOLUTE.format(uuid=uuid_type))
        self._begin_child = steps_sql.begin_child_step(uuid_type)
        self._insert_run_sql = self._compile_statement(runs_sql.INSERT_RUN_NAMED)
        self._finish_run_sql = self._compile_statement(runs_sql.FINISH_RUN_GUARDED)

    # -- runs ----------------------------------------------------------------------
    def create_run(self, run: NewRun, *, copy_steps_before: int | None = None) -> None:
        self.sealing.prepare(run.owner)
        # The common case (no tags, no fork, no spec text to store): one statement.
        if not run.tags and copy_steps_before is None and run.spec_text is None:
            self._hot(self.backend.durable, self._insert_run_sql, self._run_params(run))
            return
        with self._write() as conn:
            self._insert_run(conn, run)
            if copy_steps_before is not None and run.forked_from is not None:
                history.copy_into_fork(conn, run.forked_from, run.id, copy_steps_before,
                                       run.created_at, self.sealing)
            if run.queue is not None and run.status == "pending":
                self.backend.notify(conn, run.queue)

    def finish_run(self, run_id: uuid.UUID, token: str, status: str, output_text: str | None,
                   error_text: str | None, now: int, *, interrupt_steps: bool = True) -> bool:
        """Final status, output, error and step totals in one transaction.

        Steps still marked running when a run fails or is cancelled are closed as failed
        (interrupted), unless ``interrupt_steps`` is False (the records are then left as
        they are). Returns False when the run was cancelled meanwhile (only totals and
        interrupted steps are written) or is no longer held with ``token``.
        """
        if self.sealing.active:
            output_text = self.sealing.seal(output_text, run_aad("output", run_id),
                                            run_id=run_id)
            error_text = self.sealing.seal(error_text, run_aad("error", run_id), run_id=run_id)
        if status == "completed":  # the common case: one guarded statement, one commit
            hot = {"rid": self.backend.bind_id(run_id), "tok": token, "now": now,
                   "new_status": status, "new_output": output_text, "new_error": error_text}
            if self._hot(self.backend.durable, self._finish_run_sql, hot):
                return True
        # Statements are built once (module level): per-run construction of SQLAlchemy
        # expressions cost more than the commit itself on a fast disk.
        params = {"rid": run_id, "tok": token, "now": now}
        with self._write() as conn:
            current = conn.execute(runs_sql.OWNED_STATUS, params).scalar_one_or_none()
            if current is None:
                return False
            if status != "completed" and interrupt_steps:
                why = history.ended_run(status)
                history.record_interrupted(conn, run_id, now, why)
                conn.execute(runs_sql.INTERRUPT_STEPS, {**params, "why": why})
            final = bool(current == "running")
            if final:
                conn.execute(runs_sql.FINISH_RUN, {
                    **params, "new_status": status, "new_output": output_text,
                    "new_error": error_text})
            else:
                conn.execute(runs_sql.UPDATE_TOTALS, params)
            return final

    def cancel_run(self, run_id: uuid.UUID, owner: str | None, now: int) -> bool | None:
        """Cancel a pending/running run and its active descendants.

        Returns None when no such run is visible, False when it had already finished.
        """
        with self._write() as conn:
            status = conn.execute(runs_sql.status_of(run_id, owner)).scalar_one_or_none()
            if status is None:
                return None
            if status not in runs_sql.ACTIVE:
                return False
            self._cancel_tree(conn, run_id, now)
            return True

    def cancel_runs(self, run_ids: Sequence[uuid.UUID], owner: str | None,
                    now: int) -> list[uuid.UUID]:
        """Cancel these runs (and their active descendants) in one transaction: a bulk
        cancel's batch. Returns the ones that were unfinished (and are now cancelled)."""
        cancelled = []
        with self._write() as conn:
            for run_id in run_ids:
                status = conn.execute(runs_sql.status_of(run_id, owner)).scalar_one_or_none()
                if status in runs_sql.ACTIVE:
                    self._cancel_tree(conn, run_id, now)
                    cancelled.append(run_id)
        return cancelled

    @staticmethod
    def _cancel_tree(conn: Connection, run_id: uuid.UUID, now: int) -> None:
        pending = [run_id]
        while pending:
            current = pending.pop()
            conn.execute(runs_sql.END_WAITS, {"rid": current, "now": now,
                                              "why": history.ended_run("cancelled")})
            conn.execute(runs_sql.CANCEL_RUN, {"rid": current, "now": now})
            pending.extend(conn.execute(runs_sql.active_children(current)).scalars())

    def pause_run(self, run_id: uuid.UUID, owner: str | None, now: int,
                  reason: str | None, by: str | None) -> str | None:
        """Pause a pending or running run. Returns its status before (so ``"paused"``
        when it was paused already, or a final status), None when no such run is
        visible."""
        with self._write() as conn:
            status = conn.execute(runs_sql.status_of(run_id, owner)).scalar_one_or_none()
            if status in runs_sql.PAUSABLE:
                conn.execute(runs_sql.pause(run_id, owner, now, reason, by))
            return None if status is None else str(status)

    def release_paused(self, run_id: uuid.UUID, token: str) -> bool:
        """The execution of a paused run lets go of it (False: not paused, or not held)."""
        with self._write() as conn:
            return bool(conn.execute(runs_sql.RELEASE_PAUSED,
                                     {"rid": run_id, "tok": token}).rowcount)

    def unpause_to_queue(self, run_id: uuid.UUID, queue: str) -> bool:
        """A paused run back in a queue; False when it was not paused."""
        with self._write() as conn:
            moved = bool(conn.execute(runs_sql.unpause_to_queue(run_id, queue)).rowcount)
            if moved:
                self.backend.notify(conn, queue)
            return moved

    def claim_run(self, run_id: uuid.UUID, expected_token: str | None, new_token: str,
                  executor: str, now: int, resumed_from: int | None) -> bool:
        """Take over a run for a new execution (compare-and-set on its lease token)."""
        with self._write() as conn:
            claimed = conn.execute(runs_sql.take_over(
                run_id, expected_token, new_token, executor, now, resumed_from)).rowcount
            if claimed:  # attempts left running by the previous execution ended with it
                history.record_interrupted(conn, run_id, None)
            return bool(claimed)

    # -- steps (hot path) ----------------------------------------------------------
    def begin_step(self, run_id: uuid.UUID, token: str, position: int, name: str,
                   input_text: str | None, now: int, child: NewRun | None = None,
                   attempt: int = 0) -> bool:
        """Count a new attempt of the step. False means the run is no longer ours to advance.

        The attempt counter is incremented in the row, so it survives crashes. ``attempt``
        (the number this begin starts) is what a spooled write replays.
        """
        if input_text is not None and self.sealing.active:
            input_text = self.sealing.seal(input_text, step_aad("input", run_id, position),
                                           run_id=run_id)
        if child is not None:
            return self._begin_child_step(run_id, token, position, name, input_text, now, child)
        params = {"run_id": self.backend.bind_id(run_id), "token": token, "position": position,
                  "name": name, "input": input_text, "now": now, "child_run_id": None}
        return self._hot(self.backend.marker, self._begin_sql, params) > 0

    def _begin_child_step(self, run_id: uuid.UUID, token: str, position: int, name: str,
                          input_text: str | None, now: int, child: NewRun) -> bool:
        self.sealing.prepare(child.owner)
        with self._write() as conn:
            began = conn.execute(
                self._begin_child,
                {"run_id": run_id, "token": token, "position": position, "name": name,
                 "input": input_text, "now": now, "child_run_id": child.id},
            ).rowcount
            if not began:
                return False
            exists = conn.execute(runs_sql.find_run(child.id)).first()
            if exists is None:
                self._insert_run(conn, child)
                if child.queue is not None and child.status == "pending":  # fl.start_child
                    self.backend.notify(conn, child.queue)
            return True

    def finish_step(self, run_id: uuid.UUID, token: str, position: int, status: str,
                    output_text: str | None, error_text: str | None, now: int,
                    context: Mapping[str, str | None] | None = None,
                    logs: str | None = None, logs_dropped: int = 0, *,
                    redacted: bool = False) -> bool:
        """Record a step's result durably, with the context values it set and what its
        attempt logged (``logs``: a JSON array of records), in one transaction. A failure
        is also kept in the attempt history. ``redacted``: redaction changed its output
        or context (it is not replayable). False means another execution owns the run
        (nothing is written)."""
        seal = self.sealing
        if seal.active:  # identities are built only for what is there to seal
            if output_text is not None:
                output_text = seal.seal(output_text, step_aad("output", run_id, position),
                                        run_id=run_id)
            if error_text is not None:
                error_text = seal.seal(error_text, step_aad("error", run_id, position),
                                       run_id=run_id)
            if logs is not None:
                logs = seal.seal(logs, step_aad("logs", run_id, position), run_id=run_id)
            if context:
                context = seal.step_context(run_id, context)
        bound = self.backend.bind_id(run_id)
        params = {"run_id": bound, "token": token, "position": position,
                  "status": status, "output": output_text, "error": error_text, "now": now,
                  "context": json.dumps(dict(context)) if context else None,
                  "redacted": int(redacted)}
        if not context and status != "failed" and logs is None:  # the success path
            return self._hot(self.backend.durable, self._finish_sql, params) > 0
        statements = [(self._context_sql, {"run_id": bound, "token": token, "name": name,
                                           "value": value, "position": position, "now": now})
                      for name, value in (context or {}).items()]
        if logs is not None:
            statements.append(self._logs_statement(bound, token, position, now, logs,
                                                   logs_dropped))
        if status == "failed":
            statements.append((self._attempt_sql, {
                "run_id": bound, "token": token, "position": position, "now": now,
                "error": error_text, "retry_at": None}))
        statements.append((self._finish_sql, params))
        try:
            return self.backend.durable_many(statements) > 0
        except Exception as exc:
            raise store_error(self._where, exc) from exc

    def _logs_statement(self, bound: Any, token: str, position: int, now: int | None,
                        logs: str, dropped: int) -> tuple[str, dict[str, Any]]:
        return (self._logs_sql, {"run_id": bound, "token": token, "position": position,
                                 "now": now, "records": logs, "dropped": dropped})

    def set_context(self, run_id: uuid.UUID, token: str, name: str, value: str | None,
                    now: int) -> bool:
        """Set a context value from the workflow body (not inside a step): durably, now."""
        value = self.sealing.seal(value, context_aad(run_id, name), run_id=run_id)
        params = {"run_id": self.backend.bind_id(run_id), "token": token, "name": name,
                  "value": value, "position": 0, "now": now}
        return self._hot(self.backend.durable, self._context_sql, params) > 0

    def save_artifact(self, token: str | None, row: ArtifactRow) -> bool:
        """Reference content from a run under ``key`` (replacing an earlier reference).

        With ``token`` the write is fenced like a step's; None is for callers outside
        an execution (the Ledger's artifact verbs).
        """
        params = {"run_id": self.backend.bind_id(row.run_id), "key": row.key,
                  "owner": row.owner, "digest": row.digest, "size": row.size,
                  "media_type": row.media_type, "position": row.position,
                  "now": row.created_at, "token": token}
        if token is not None:
            return self._hot(self.backend.durable, self._artifact_sql, params) > 0
        with self._write() as conn:
            conn.execute(artifacts_sql.delete_artifact(row.run_id, row.key))
            conn.execute(artifacts_sql.insert_artifact(row))
        return True

    def artifacts_of(self, run_id: uuid.UUID, prefix: str = "") -> list[ArtifactRow]:
        query = artifacts_sql.artifacts_of(run_id, prefix)
        with self._read() as conn:
            return [ArtifactRow(*row) for row in conn.execute(query)]

    def delete_artifact(self, run_id: uuid.UUID, key: str) -> ArtifactRow | None:
        with self._write() as conn:
            row = conn.execute(artifacts_sql.artifact(run_id, key)).first()
            if row is None:
                return None
            conn.execute(artifacts_sql.delete_artifact(run_id, key))
            return ArtifactRow(*row)

    def unreferenced(self, contents: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (owner, digest) pairs no artifact row references any more."""
        if not contents:
            return set()
        digests = [digest for _, digest in contents]
        query = artifacts_sql.referenced(digests)
        with self._read() as conn:
            used = {(r[0], r[1]) for r in conn.execute(query)}
        return contents - used

    def contexts_of(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, str | None]]:
        """The context values of several runs (for exports)."""
        found: dict[uuid.UUID, dict[str, str | None]] = {run_id: {} for run_id in run_ids}
        if not run_ids:
            return found
        query = context_sql.contexts_of(run_ids)
        with self._read() as conn:
            for run_id, name, value in conn.execute(query):
                found[run_id][name] = self.sealing.open(value, context_aad(run_id, name))
        return found

    def context_of(self, run_id: uuid.UUID) -> list[tuple[str, str | None, int, int]]:
        """(name, value, position, updated_at) of a run's context, by name."""
        query = context_sql.context_of(run_id)
        with self._read() as conn:
            return [(r[0], self.sealing.open(r[1], context_aad(run_id, r[0])), r[2], r[3])
                    for r in conn.execute(query)]

    def replay_begin_step(self, run_id: uuid.UUID, token: str, position: int, name: str,
                          input_text: str | None, now: int, attempt: int) -> bool:
        input_text = self.sealing.seal(input_text, step_aad("input", run_id, position),
                                       run_id=run_id)
        params = {"run_id": self.backend.bind_id(run_id), "token": token, "position": position,
                  "name": name, "input": input_text, "now": now, "child_run_id": None,
                  "attempt": attempt}
        return self._hot(self.backend.durable, self._begin_absolute_sql, params) > 0

    def replay_usage(self, token: str, row: UsageRow) -> bool:
        params = self._usage_params(token, row)
        return self._hot(self.backend.durable, self._usage_once_sql, params) >= 0

    def record_retry(self, run_id: uuid.UUID, token: str, position: int, error_text: str,
                     now: int | None, retry_at: int | None, logs: str | None = None,
                     logs_dropped: int = 0) -> bool:
        """Record a failed attempt that another attempt follows at ``retry_at``, with what
        it logged (``logs``).

        Committed like a begin marker (the next attempt's result makes it durable).
        """
        if self.sealing.active:
            error_text = self.sealing.seal(error_text, step_aad("error", run_id, position),
                                           run_id=run_id) or ""
            logs = self.sealing.seal(logs, step_aad("logs", run_id, position), run_id=run_id)
        bound = self.backend.bind_id(run_id)
        params = {"run_id": bound, "token": token, "position": position,
                  "now": now, "error": error_text, "retry_at": retry_at}
        if logs is None:
            return self._hot(self.backend.marker, self._attempt_sql, params) > 0
        try:
            return self.backend.durable_many([
                self._logs_statement(bound, token, position, now, logs, logs_dropped),
                (self._attempt_sql, params)]) > 0
        except Exception as exc:
            raise store_error(self._where, exc) from exc

    def record_usage(self, token: str, row: UsageRow) -> bool:
        """Record one LLM call at once (tokens are spent even if the step fails later)."""
        return self._hot(self.backend.marker, self._usage_sql,
                         self._usage_params(token, row)) > 0

    def _usage_params(self, token: str, row: UsageRow) -> dict[str, Any]:
        return {"run_id": self.backend.bind_id(row.run_id), "token": token,
                "position": row.position, "model": row.model, "provider": row.provider,
                "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
                "cached_input_tokens": row.cached_input_tokens,
                "reasoning_tokens": row.reasoning_tokens, "cost_usd": row.cost_usd,
                "prices_version": row.prices_version, "recorded_at": row.recorded_at,
                "cache_hit": int(row.cache_hit)}

    def load_records(self, run_rows: Sequence[dict[str, Any]],
                     step_rows: Sequence[dict[str, Any]]) -> None:
        """Bulk-insert ready-made rows (column name → value) in one transaction.

        For filling stores in benchmarks; no checks are made, nothing is sealed.
        PostgreSQL loads with COPY.
        """
        if self.sealing.active:  # rows go in as given: they would be stored in plaintext
            raise ConfigurationError("load_records writes rows as given (benchmark fills): "
                                     "not into a store that encrypts its payloads")
        with self._write() as conn:
            if self.backend.name == "postgresql":
                driver: Any = conn.connection.driver_connection
                with driver.cursor() as cur:
                    for copy_sql, rows in ((bulk_sql.copy_runs, run_rows),
                                           (bulk_sql.copy_steps, step_rows)):
                        if not rows:
                            continue
                        columns = list(rows[0])
                        with cur.copy(copy_sql(columns)) as copy:
                            for row in rows:
                                copy.write_row([row[c] for c in columns])
                return
            if run_rows:
                conn.execute(bulk_sql.INSERT_RUNS, list(run_rows))
            if step_rows:
                conn.execute(bulk_sql.INSERT_STEPS, list(step_rows))

    def delete_runs(self, run_ids: Sequence[uuid.UUID], *, lease: LeaseHold | None = None,
                    now: int | None = None) -> tuple[int, set[tuple[str, str]]]:
        """Delete runs with everything recorded for them, in one transaction.

        Returns the number of steps deleted and the (owner, digest) of the artifact
        content they referenced, for garbage collection. With ``lease`` (fenced), the
        transaction first checks that the holding still has its lease at ``now``, and
        raises LeaseNotHeld, deleting nothing, when it does not (``now`` None: the
        database's clock).
        """
        if not run_ids:
            return 0, set()
        ids = list(run_ids)
        with self._write() as conn:
            if lease is not None and not self.check_lease(conn, lease, now):
                raise LeaseNotHeld(f"the {lease.name!r} lease (fence {lease.fence}) passed "
                                   "to another process: nothing was deleted")
            contents = {(r[0], r[1]) for r in conn.execute(
                bulk_sql.contents_of_runs(ids, self.dialect))}
            for statement in bulk_sql.delete_records(ids, self.dialect):
                conn.execute(statement)
            removed = conn.execute(bulk_sql.delete_steps(ids, self.dialect)).rowcount
            for statement in bulk_sql.delete_runs(ids, self.dialect):
                conn.execute(statement)
            return int(removed), contents
