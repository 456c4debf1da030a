"""Attempt history and fork copies: writes and reads inside the caller's transaction.

A step row describes the step's latest attempt; ``flowledger_attempts`` keeps the others
that did not succeed (failed, or interrupted by a crash or by the run ending). Takeovers
record the attempts they interrupt before a new attempt overwrites the step row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from sqlalchemy import Connection

from .rows import AttemptRow
from .sealing import NO_SEALING, NoSealing, context_aad, rewrite_parts
from .statements import history as history_sql
from .statements import keys as keys_sql

ABANDONED = json.dumps({
    "type": "flowledger.Interrupted", "traceback": "",
    "message": "the process executing this attempt stopped (killed, crashed, or its lease "
               "expired) before the attempt ended"})


def ended_run(status: str) -> str:
    """The error of attempts still running when their run ended with ``status``."""
    return json.dumps({"type": "flowledger.Interrupted", "traceback": "",
                       "message": f"the run ended ({status}) while this step was running"})


def record_interrupted(conn: Connection, run_id: uuid.UUID, now: int | None,
                       why: str = ABANDONED) -> None:
    """Record the attempts of ``run_id`` still marked running as interrupted."""
    conn.execute(history_sql.RECORD_INTERRUPTED_ATTEMPTS,
                 {"rid": run_id, "now": now, "why": why})


def attempts_of(conn: Connection,
                run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[AttemptRow]]:
    """The recorded attempts of these runs, by run, in position and attempt order."""
    found: dict[uuid.UUID, list[AttemptRow]] = {}
    if not run_ids:
        return found
    for row in conn.execute(history_sql.attempts_of(run_ids)):
        found.setdefault(row.run_id, []).append(AttemptRow(*row))
    return found


def copy_into_fork(conn: Connection, source: uuid.UUID, fork: uuid.UUID, before: int,
                   now: int, sealing: NoSealing = NO_SEALING) -> None:
    """Copy what a fork reuses: the source's steps before ``before`` with their attempts
    and offloaded outputs, and the context as those steps left it. Sealed payloads are
    sealed again for the fork's records (a copy would not authenticate there)."""
    for statement in history_sql.fork_copies(source, fork, before):
        conn.execute(statement)
    values = _context_at(conn, source, before)
    if sealing.active:
        _reseal_copies(conn, sealing, source, fork)
        values = {name: (sealing.move(value, context_aad(source, name),
                                      context_aad(fork, name)), position)
                  for name, (value, position) in values.items()}
    if values:
        conn.execute(history_sql.INSERT_CONTEXT, [
            {"run_id": fork, "name": name, "value": value, "position": position,
             "updated_at": now} for name, (value, position) in values.items()])


def _context_at(conn: Connection, source: uuid.UUID,
                before: int) -> dict[str, tuple[str | None, int]]:
    """name -> (value, position) as the steps before ``before`` left the context.

    The workflow body's own values (position 0) are not copied: the fork replays the
    body, which sets them again.
    """
    values: dict[str, tuple[str | None, int]] = {}
    for position, recorded in conn.execute(
            history_sql.step_contexts_before(source, before)):
        for name, value in json.loads(recorded).items():
            values[name] = (value, position)
    # Steps recorded before steps kept their own context: their latest values, if set
    # before the fork point (an overwritten earlier value is not known).
    for name, value, position in conn.execute(
            history_sql.context_set_before(source, before)):
        values.setdefault(name, (value, position))
    return values


def _reseal_copies(conn: Connection, sealing: NoSealing, source: uuid.UUID,
                   fork: uuid.UUID) -> None:
    """The fork's copied step and attempt payloads, sealed for the fork's own records."""
    old_id, new_id = str(source).encode(), str(fork).encode()

    def move(text: str, aad: bytes) -> str:
        # The record identity is the same but for the run id.
        return sealing.move(text, aad, aad.replace(old_id, new_id, 1)) or text

    for spec in keys_sql.SEALED:
        if spec.table.name not in ("flowledger_steps", "flowledger_attempts"):
            continue
        for row in conn.execute(keys_sql.rows_of_run(spec, fork)).all():
            keys, identity, value = tuple(row[:len(spec.keys)]), row[len(spec.keys):-1], row[-1]
            source_identity = (source, *identity[1:])
            moved = rewrite_parts(spec, source_identity, value, move)
            conn.execute(keys_sql.replace_value(spec, keys, value, moved))
