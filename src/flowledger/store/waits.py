"""The durable-wait side of the store: suspending runs at sleeps and event waits, and
the events sent to runs.

A waiter locks its run's row (held with its lease token) before it looks for an event
and suspends; a sender locks the same row before it records the event and wakes the
run. Whichever comes second sees what the first committed, so an event sent while a
run suspends always wakes it (on SQLite ``BEGIN IMMEDIATE`` serializes both anyway).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from .core import StoreCore
from .rows import EventRow
from .sealing import event_aad, step_aad
from .statements import waits as waits_sql


class StoreWaits(StoreCore):
    """Durable sleeps and event waits; a part of ``SqlStore``."""

    def suspend_run(self, run_id: uuid.UUID, token: str, position: int,
                    wake_at: int | None, waiting_for: str | None) -> str:
        """Let go of a held run until ``wake_at`` or event ``waiting_for``: ``"suspended"``;
        ``"event"`` when such an event is already there (nothing changes: take it);
        ``"lost"`` when the run is no longer held running with ``token``."""
        params = {"rid": run_id, "tok": token, "pos": position, "wake": wake_at,
                  "event": waiting_for}
        with self._write() as conn:
            status = conn.execute(waits_sql.LOCK_HELD, params).scalar_one_or_none()
            if status != "running":
                return "lost"
            if waiting_for is not None and conn.execute(
                    waits_sql.pending_event(run_id, waiting_for)).first() is not None:
                return "event"
            conn.execute(waits_sql.SUSPEND, params)
            conn.execute(waits_sql.STEP_WAITS, params)
            return "suspended"

    def next_event(self, run_id: uuid.UUID, name: str) -> tuple[int, str | None] | None:
        """(id, payload) of the oldest event of this name not yet consumed by the run."""
        with self._read() as conn:
            row = conn.execute(waits_sql.pending_event(run_id, name)).first()
        return None if row is None else (
            int(row[0]), self.sealing.open(row[1], event_aad("payload", run_id, name)))

    def consume_event(self, run_id: uuid.UUID, token: str, position: int, event_id: int,
                      output: str | None, now: int) -> bool:
        """The wait at ``position`` takes the event: the event is marked consumed by it and
        the step completes with ``output``, in one transaction. False: the run is no
        longer held with ``token`` (nothing is written)."""
        output = self.sealing.seal(output, step_aad("output", run_id, position), run_id=run_id)
        params = {"rid": run_id, "tok": token, "pos": position, "event_id": event_id,
                  "out": output, "now": now}
        with self._write() as conn:
            if conn.execute(waits_sql.LOCK_HELD, params).scalar_one_or_none() != "running":
                return False
            if not conn.execute(waits_sql.CONSUME, params).rowcount:
                return False
            conn.execute(waits_sql.FINISH_WAIT_STEP, params)
            return True

    def reject_event(self, event_id: int, error: str, now: int) -> None:
        """Mark an event the wait refused; it is never delivered."""
        if self.sealing.active:
            with self._read() as conn:
                found = conn.execute(waits_sql.event_identity(event_id)).first()
            if found is not None:
                error = self.sealing.seal(error, event_aad("error", found[0], found[1]),
                                          run_id=found[0]) or error
        with self._write() as conn:
            conn.execute(waits_sql.REJECT, {"event_id": event_id, "error": error, "now": now})

    def send_event(self, run_id: uuid.UUID, owner: str | None, name: str,
                   payload: str | None, now: int, step_name: str,
                   check: Callable[[Sequence[str | None]], None]) -> tuple[str | None, int | None]:
        """Record an event for a run, and wake the run if it waits for it. ``check`` sees
        the inputs of the run's open waits named ``step_name`` and may refuse the payload
        (by raising: nothing is recorded). Returns (the run's status before, event id);
        no id when the run is not visible (status None) or has finished."""
        payload = self.sealing.seal(payload, event_aad("payload", run_id, name), owner=owner,
                                    run_id=run_id)
        with self._write() as conn:
            state = conn.execute(waits_sql.run_state(run_id, owner)).first()
            if state is None:
                return None, None
            status, _, queue = state
            if status in ("completed", "failed", "cancelled"):
                return str(status), None
            check([self.sealing.open(row[0], step_aad("input", run_id, row[1]))
                   for row in conn.execute(waits_sql.open_waits(run_id, step_name))])
            event_id = conn.execute(waits_sql.send(run_id, name, payload, now)).scalar_one()
            if conn.execute(waits_sql.wake_for_event(run_id, name)).rowcount and queue:
                self.backend.notify(conn, queue)
            return str(status), int(event_id)

    def events_of(self, run_id: uuid.UUID) -> list[EventRow]:
        """Every event sent to a run, oldest first."""
        with self._read() as conn:
            rows = [EventRow(*row) for row in conn.execute(waits_sql.events_of(run_id))]
        return [self.sealing.event_row(row) for row in rows]

    def set_step_input(self, run_id: uuid.UUID, position: int, text: str) -> None:
        """Replace a step's recorded input (a wait that starts again records its new
        timeout)."""
        text = self.sealing.seal(text, step_aad("input", run_id, position), run_id=run_id) or text
        with self._write() as conn:
            conn.execute(waits_sql.set_step_input(run_id, position, text))
