"""Best-effort persistence: when the store is unreachable, writes go to a local spool.

``Ledger(persistence="best_effort")`` uses ``SpoolingStore``. A write that fails with
StoreUnavailable is appended (and fsynced) to this process's spool file and reported as
done, so the workflow goes on. Once anything is spooled, later writes queue behind it to
keep their order. The spool is written back, in order, on the next write after the
store answers again (tried at most every ``retry_interval`` seconds) and by
``Ledger.flush_spool()``. Replays are idempotent — attempt numbers are absolute, usage
records are not inserted twice, everything else is an upsert or a guarded update — so a
flush interrupted half-way is simply run again. Spools left by dead processes of this
host are flushed too.

Limits: fencing is checked when the spool is replayed, not while spooling (a write
rejected then is logged and dropped); cancellation is noticed only once the store is
back; child runs cannot start while the store is down.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from .. import ids
from ..encryption import Keyring
from ..errors import StoreUnavailable
from .dialects import Durability
from .rows import ArtifactRow, NewRun, UsageRow
from .sql import SqlStore

log = logging.getLogger("flowledger")


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    return uuid.UUID(obj["$uuid"]) if obj.keys() == {"$uuid"} else obj


class SpoolingStore(SqlStore):
    """A SqlStore whose execution writes survive an outage of the database."""

    def __init__(self, url: str, *, spool_dir: str, durability: Durability = "full",
                 retry_interval: float = 1.0, keyring: Keyring | None = None) -> None:
        # One folder per database, so a spool is only ever written back where it belongs.
        self.spool_dir = Path(spool_dir) / hashlib.sha256(
            _plain_url(url).encode()).hexdigest()[:16]
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.spool_path = self.spool_dir / f"{ids.identity().replace(':', '-')}.jsonl"
        self.retry_interval = retry_interval
        self._lock = threading.RLock()
        self._pending = False
        self._next_try = 0.0
        super().__init__(url, durability=durability, migrate_schema=False, keyring=keyring)
        self._migrated = False
        try:
            self.flush_spool()
        except StoreUnavailable as exc:
            log.warning("flowledger: store unavailable at open (%s); records will be spooled "
                        "to %s until it is back", exc, self.spool_path)

    # -- the spool -----------------------------------------------------------------
    def _append(self, op: str, args: dict[str, Any]) -> None:
        line = json.dumps({"op": op, "args": args}, default=_encode) + "\n"
        with open(self.spool_path, "a", encoding="utf-8") as spool:
            fcntl.flock(spool, fcntl.LOCK_EX)
            spool.write(line)
            spool.flush()
            os.fsync(spool.fileno())

    def _files(self) -> list[Path]:
        """This process's spool and those of dead processes of this host."""
        return [path for path in sorted(self.spool_dir.glob("*.jsonl"))
                if path == self.spool_path
                or ids.is_alive_here(_identity_of(path.stem)) is False]

    def flush_spool(self, raise_errors: bool = True) -> int:
        """Write spooled records back, in order. Returns how many were replayed."""
        with self._lock:
            replayed = 0
            try:
                if not self._migrated:  # a store that was down at open is migrated now
                    self.upgrade_schema()
                    self._migrated = True
                for path in self._files():
                    replayed += self._replay_file(path)
            except StoreUnavailable:
                self._pending = True
                self._next_try = time.monotonic() + self.retry_interval
                if raise_errors:
                    raise
                return replayed
            self._pending = False
            if replayed:
                log.warning("flowledger: wrote %d spooled records back to the store", replayed)
            return replayed

    def _replay_file(self, path: Path) -> int:
        with open(path, "r+", encoding="utf-8") as spool:
            fcntl.flock(spool, fcntl.LOCK_EX)
            entries = [json.loads(line, object_hook=_decode) for line in spool if line.strip()]
            for entry in entries:
                if not self._replay(entry["op"], entry["args"]):
                    self._report_rejected(entry["op"], entry["args"])
            spool.truncate(0)
        path.unlink(missing_ok=True)
        return len(entries)

    def _report_rejected(self, op: str, args: dict[str, Any]) -> None:
        """A replayed write the store refused: harmless when the same execution's later
        records are already there (a flush interrupted half-way, run again), a real loss
        when another execution holds the run now."""
        run_id = args.get("run_id") or (args.get("row") or {}).get("run_id")
        state = self.get_status(run_id) if isinstance(run_id, uuid.UUID) else None
        if state is not None and state[1] == args.get("token"):
            log.debug("flowledger: spooled %s for run %s was already applied", op, run_id)
            return
        log.warning("flowledger: spooled %s for run %s was rejected: %s; dropped", op, run_id,
                    "the run is gone" if state is None
                    else "another execution holds the run now")

    def _replay(self, op: str, args: dict[str, Any]) -> bool:
        if op == "create_run":
            run = NewRun(**args["run"])
            if self.get_status(run.id) is None:
                super().create_run(run)
            return True
        if op == "begin_step":
            return self.replay_begin_step(**args)
        if op == "finish_step":
            return super().finish_step(**args)
        if op == "record_retry":
            super().record_retry(**args)  # False: recorded by an earlier, interrupted flush
            return True
        if op == "note_step_error":  # spooled by flowledger 0.1: the attempt had no time
            super().record_retry(**args, now=None, retry_at=None)
            return True
        if op == "finish_run":
            super().finish_run(**args)
            return True
        if op == "record_usage":
            return self.replay_usage(args["token"], UsageRow(**args["row"]))
        if op == "set_context":
            return super().set_context(**args)
        if op == "save_artifact":
            return super().save_artifact(args["token"], ArtifactRow(**args["row"]))
        raise ValueError(f"unknown spooled operation {op!r}")

    def _spooled(self, op: str, args: dict[str, Any], direct: Callable[[], Any],
               optimistic: Any) -> Any:
        """Write directly when possible; otherwise spool, keeping the order of writes."""
        with self._lock:
            if self._pending and time.monotonic() >= self._next_try:
                self.flush_spool(raise_errors=False)
            if not self._pending:
                try:
                    return direct()
                except StoreUnavailable as exc:
                    log.warning("flowledger: store unavailable (%s); spooling records to %s "
                                "until it is back", exc, self.spool_path)
                    self._pending = True
                    self._next_try = time.monotonic() + self.retry_interval
            self._append(op, args)
            return optimistic

    # -- the writes an execution makes -----------------------------------------------
    def create_run(self, run: NewRun, *, copy_steps_before: int | None = None) -> None:
        if copy_steps_before is not None:  # a fork reads its source: needs the store
            super().create_run(run, copy_steps_before=copy_steps_before)
            return
        args: dict[str, Any] = {"run": {**asdict(run), "tags": list(run.tags)}}
        self._spooled("create_run", args, lambda: super(SpoolingStore, self).create_run(run),
                    None)

    def begin_step(self, run_id: uuid.UUID, token: str, position: int, name: str,
                   input_text: str | None, now: int, child: NewRun | None = None,
                   attempt: int = 0) -> bool:
        if child is not None:
            return super().begin_step(run_id, token, position, name, input_text, now, child)
        args: dict[str, Any] = {
            "run_id": run_id, "token": token, "position": position, "name": name,
            "input_text": input_text, "now": now, "attempt": attempt}
        return bool(self._spooled("begin_step", args, lambda: super(SpoolingStore, self)
                                .begin_step(run_id, token, position, name, input_text, now),
                                True))

    def finish_step(self, run_id: uuid.UUID, token: str, position: int, status: str,
                    output_text: str | None, error_text: str | None, now: int,
                    context: Mapping[str, str | None] | None = None,
                    logs: str | None = None, logs_dropped: int = 0, *,
                    redacted: bool = False) -> bool:
        args: dict[str, Any] = {
            "run_id": run_id, "token": token, "position": position, "status": status,
            "output_text": output_text, "error_text": error_text, "now": now,
            "context": dict(context) if context else None, "logs": logs,
            "logs_dropped": logs_dropped, "redacted": redacted}
        return bool(self._spooled("finish_step", args, lambda: super(SpoolingStore, self)
                                .finish_step(**args), True))

    def record_retry(self, run_id: uuid.UUID, token: str, position: int, error_text: str,
                     now: int | None, retry_at: int | None, logs: str | None = None,
                     logs_dropped: int = 0) -> bool:
        args: dict[str, Any] = {"run_id": run_id, "token": token, "position": position,
                                "error_text": error_text, "now": now, "retry_at": retry_at,
                                "logs": logs, "logs_dropped": logs_dropped}
        return bool(self._spooled("record_retry", args,
                                  lambda: super(SpoolingStore, self).record_retry(**args), True))

    def finish_run(self, run_id: uuid.UUID, token: str, status: str, output_text: str | None,
                   error_text: str | None, now: int, *, interrupt_steps: bool = True) -> bool:
        args: dict[str, Any] = {"run_id": run_id, "token": token, "status": status,
                "output_text": output_text, "error_text": error_text, "now": now,
                "interrupt_steps": interrupt_steps}
        return bool(self._spooled("finish_run", args,
                                lambda: super(SpoolingStore, self).finish_run(**args), True))

    # A run that suspends (or takes an event) lets go of its lease in the database: what
    # it recorded before must be there first.
    def suspend_run(self, run_id: uuid.UUID, token: str, position: int,
                    wake_at: int | None, waiting_for: str | None) -> str:
        with self._lock:
            self.flush_spool()
            return super().suspend_run(run_id, token, position, wake_at, waiting_for)

    def consume_event(self, run_id: uuid.UUID, token: str, position: int, event_id: int,
                      output: str | None, now: int) -> bool:
        with self._lock:
            self.flush_spool()
            return super().consume_event(run_id, token, position, event_id, output, now)

    def record_usage(self, token: str, row: UsageRow) -> bool:
        return bool(self._spooled("record_usage", {"token": token, "row": asdict(row)},
                                lambda: super(SpoolingStore, self).record_usage(token, row),
                                True))

    def set_context(self, run_id: uuid.UUID, token: str, name: str, value: str | None,
                    now: int) -> bool:
        args: dict[str, Any] = {"run_id": run_id, "token": token, "name": name, "value": value,
                                "now": now}
        return bool(self._spooled("set_context", args,
                                lambda: super(SpoolingStore, self).set_context(**args), True))

    def save_artifact(self, token: str | None, row: ArtifactRow) -> bool:
        if token is None:
            return super().save_artifact(token, row)
        return bool(self._spooled("save_artifact", {"token": token, "row": asdict(row)},
                                lambda: super(SpoolingStore, self).save_artifact(token, row),
                                True))


def _plain_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _identity_of(stem: str) -> str:
    """The executor identity a spool file was named after (``host-pid-start``)."""
    host, pid, start = stem.rsplit("-", 2)
    return f"{host}:{pid}:{start}"
