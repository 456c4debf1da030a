"""Retention in the store: policies, the lease of the process applying them, whole runs
read for archives, and archived runs written back (``restore_runs``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection

from . import history
from .core import SPEC_ENTRYPOINT, StoreCore
from .ratelimits import database_now
from .rows import (
    ArchivedRun,
    ArtifactRow,
    EventRow,
    LeaseHold,
    RetentionPolicyRow,
    RunRow,
    SpecRow,
    StepRow,
    UsageRow,
)
from .sealing import context_aad, event_aad, run_aad, step_aad
from .statements import reads as reads_sql
from .statements import retention as ret_sql
from .statements import specs as specs_sql

# StepRow's columns in the steps table (the rest are what a preview read adds).
_STEP_COLUMNS = tuple(name for name in StepRow.__slots__
                      if name not in ("input_length", "output_length"))


class StoreRetention(StoreCore):
    """Retention policies, duty leases, archived runs; a part of ``SqlStore``."""

    # -- policies ----------------------------------------------------------------------
    def save_retention_policy(self, row: RetentionPolicyRow) -> bool:
        """Create the policy, or change the one with its id; True when it was new."""
        with self._write() as conn:
            if conn.execute(ret_sql.policy(row.id)).first() is None:
                conn.execute(ret_sql.insert_policy(row))
                return True
            conn.execute(ret_sql.replace_policy(row))
            return False

    def retention_policy_rows(self) -> list[RetentionPolicyRow]:
        with self._read() as conn:
            return [RetentionPolicyRow(*row) for row in conn.execute(ret_sql.LIST_POLICIES)]

    def delete_retention_policy(self, policy_id: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(ret_sql.delete_policy(policy_id)).rowcount)

    # -- leases ------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, token: str, now: int | None,
                      duration_us: int) -> LeaseHold | str:
        """Take or renew the lease ``name`` for ``duration_us``: the holding, or (when
        another holder has it) that holder's name. A new holding gets a greater fence
        than every earlier one. ``now`` None: the database's clock (hosts whose clocks
        disagree still agree on expiries)."""
        with self._write() as conn:
            if now is None:
                now = database_now(conn)
            conn.execute(self.backend.insert_unless_duplicate(
                ret_sql.leases_table(), ["name"], None).values(
                name=name, holder="", token="", fence=0, expires_at=0, acquired_at=0))
            current, fence, expires_at, who = conn.execute(ret_sql.lock_lease(name)).one()
            if current == token and expires_at > now:
                conn.execute(ret_sql.renew_lease(name, token, now + duration_us))
                return LeaseHold(name, token, int(fence), now + duration_us)
            if expires_at > now:
                return str(who)
            conn.execute(ret_sql.take_lease(name, holder, token, int(fence) + 1,
                                            now + duration_us, now))
            return LeaseHold(name, token, int(fence) + 1, now + duration_us)

    def release_lease(self, hold: LeaseHold) -> None:
        with self._write() as conn:
            conn.execute(ret_sql.release_lease(hold.name, hold.token))

    @staticmethod
    def check_lease(conn: Connection, hold: LeaseHold, now: int | None) -> bool:
        """Whether ``hold`` still holds its lease at ``now`` (None: the database's
        clock), locking it for this transaction (a fenced write checks it first)."""
        at = database_now(conn) if now is None else now
        return conn.execute(ret_sql.holding(hold.name, hold.token, hold.fence,
                                            at)).first() is not None

    # -- whole runs --------------------------------------------------------------------
    def forks_into(self, run_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(fork, source) for every run forked from one of these."""
        if not run_ids:
            return []
        with self._read() as conn:
            return [(row[0], row[1]) for row in conn.execute(
                ret_sql.forks_into(list(run_ids), self.dialect))]

    def archived_runs(self, run_ids: Sequence[uuid.UUID]) -> list[ArchivedRun]:
        """Everything recorded for these runs, read from one snapshot, in the order
        given (unknown ids are left out). Payloads come out as the serialized text the
        Ledger wrote (a store that encrypts payloads opens them here: archives hold the
        records, never the store's ciphertexts)."""
        ids = list(run_ids)
        if not ids:
            return []
        dialect = self.dialect
        with self._read() as conn:
            rows = {row.id: row for row in conn.execute(reads_sql.runs_among(ids, dialect))}
            tags: dict[uuid.UUID, list[str]] = {}
            for run_id, tag in conn.execute(reads_sql.tags_among(ids, dialect)):
                tags.setdefault(run_id, []).append(tag)
            found = {run_id: ArchivedRun(
                self.sealing.run_row(RunRow.from_row(row, tuple(tags.get(run_id, ())))),
                [], [], [], [], [], [], [])
                for run_id, row in rows.items()}
            self._read_records(conn, ids, found)
        return [found[run_id] for run_id in ids if run_id in found]

    def _read_records(self, conn: Connection, ids: list[uuid.UUID],
                      found: dict[uuid.UUID, ArchivedRun]) -> None:
        """Everything recorded for the runs of ``found``, payloads opened (a payload
        this process has no key for stays sealed, and is restored as it is)."""
        dialect, opened = self.dialect, self.sealing
        for row in conn.execute(reads_sql.steps_of(ids)):
            found[row.run_id].steps.append(opened.step_row(StepRow(*row)))
        for run_id, tried in history.attempts_of(conn, ids).items():
            found[run_id].attempts.extend(opened.attempt_row(a) for a in tried)
        for row in conn.execute(reads_sql.usage_of(ids)):
            found[row[0]].usage.append(UsageRow(*row))
        for run_id, name, value, position, updated_at in conn.execute(
                ret_sql.contexts_among(ids, dialect)):
            found[run_id].context.append(
                (name, opened.open(value, context_aad(run_id, name)), position, updated_at))
        for row in conn.execute(ret_sql.artifacts_among(ids, dialect)):
            found[row[0]].artifacts.append(ArtifactRow(*row))
        for run_id, position, attempt, records, dropped, written_at in conn.execute(
                ret_sql.logs_among(ids, dialect)):
            found[run_id].logs.append(
                (position, attempt, opened.open(records, step_aad("logs", run_id, position))
                 or "", dropped, written_at))
        for row in conn.execute(ret_sql.events_among(ids, dialect)):
            found[row[1]].events.append(opened.event_row(EventRow(*row)))
        for item in found.values():
            entry = item.run.entrypoint
            if entry.startswith(SPEC_ENTRYPOINT):
                spec = conn.execute(specs_sql.spec(
                    item.run.owner, entry.removeprefix(SPEC_ENTRYPOINT))).first()
                item.spec = None if spec is None else SpecRow(*spec)

    def restore_runs(self, archived: Sequence[ArchivedRun]) -> list[uuid.UUID]:
        """Write archived runs back, each with everything recorded for it, in one
        transaction; a run whose id is recorded already is left as it is. Returns the
        ids restored. Payloads are given as the serialized text the Ledger writes (a store
        that encrypts payloads seals them here, as on every other write)."""
        wanted = [item.run.id for item in archived]
        restored = []
        for owner in {item.run.owner for item in archived}:
            self.sealing.prepare(owner)  # an owner key is made outside the transaction
        with self._write() as conn:
            present = set(conn.execute(ret_sql.existing(wanted, self.dialect)).scalars())
            for item in archived:
                if item.run.id in present:
                    continue
                present.add(item.run.id)
                self._restore_one(conn, item)
                restored.append(item.run.id)
        return restored

    def _restore_one(self, conn: Connection, item: ArchivedRun) -> None:
        run_id, owner = item.run.id, item.run.owner

        def seal(text: str | None, aad: bytes) -> str | None:
            return self.sealing.seal(text, aad, owner=owner)

        run = asdict(item.run)
        tags, revision = run.pop("tags"), run["revision"]
        for field in ("inputs", "output", "error"):
            run[field] = seal(run[field], run_aad(field, run_id))
        if item.spec is not None:  # the text a spec run was recorded with (kept if there)
            conn.execute(specs_sql.SAVE_TEXT, specs_sql.text_params(item.spec))
        conn.execute(ret_sql.INSERT_RUN, run)
        if tags:
            conn.execute(ret_sql.INSERT_TAG, [{"tag": tag, "run_id": run_id} for tag in tags])
        if item.steps:
            conn.execute(ret_sql.INSERT_STEP, [self._step_values(step, seal)
                                               for step in item.steps])
        if item.attempts:
            conn.execute(ret_sql.INSERT_ATTEMPT, [
                {**asdict(a), "error": seal(a.error, step_aad("error", run_id, a.position))}
                for a in item.attempts])
        for record in item.usage:  # one by one: their ids keep the recording order
            conn.execute(ret_sql.INSERT_USAGE, {**asdict(record),
                                                "cache_hit": int(record.cache_hit)})
        if item.context:
            conn.execute(ret_sql.INSERT_CONTEXT, [
                {"run_id": run_id, "name": name,
                 "value": seal(value, context_aad(run_id, name)), "position": position,
                 "updated_at": updated_at}
                for name, value, position, updated_at in item.context])
        if item.artifacts:
            conn.execute(ret_sql.INSERT_ARTIFACT, [asdict(a) for a in item.artifacts])
        if item.logs:
            conn.execute(ret_sql.INSERT_LOGS, [
                {"run_id": run_id, "position": position, "attempt": attempt,
                 "records": seal(records, step_aad("logs", run_id, position)),
                 "dropped": dropped, "written_at": written_at}
                for position, attempt, records, dropped, written_at in item.logs])
        for event in item.events:  # in order: consumption is by event id
            values = asdict(event)
            values.pop("id")
            for field in ("payload", "error"):
                values[field] = seal(values[field], event_aad(field, run_id, event.name))
            conn.execute(ret_sql.INSERT_EVENT, values)
        conn.execute(ret_sql.set_revision(run_id, revision))

    @staticmethod
    def _step_values(step: StepRow, seal: Callable[[str | None, bytes], str | None]
                     ) -> dict[str, Any]:
        values: dict[str, Any] = {name: getattr(step, name) for name in _STEP_COLUMNS}
        for field in ("input", "output", "error"):
            values[field] = seal(values[field], step_aad(field, step.run_id, step.position))
        if step.context:
            values["context"] = json.dumps({
                name: seal(value, context_aad(step.run_id, name))
                for name, value in json.loads(step.context).items()})
        values["redacted"] = int(bool(getattr(step, "redacted", 0)))
        return values
