"""Reading one run whole, fast: the statements of ``statements/snapshot.py``, compiled once
per store and run on a raw driver connection against one snapshot (on PostgreSQL one
pipelined round trip). A part of ``SqlStore``."""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any, TypeGuard

from ..encryption import is_sealed
from .core import StoreCore
from .rows import (
    RUN_COLUMNS,
    ArtifactRow,
    AttemptRow,
    Revision,
    RunRead,
    RunRow,
    StepMarks,
    StepRow,
    UsageRow,
)
from .sealing import context_aad
from .statements import snapshot
from .translate import translate_errors

#: No preview: values are never longer than this many characters.
WHOLE = 2**31 - 1


class StoreSnapshots(StoreCore):
    """``read_run`` and ``revisions``: what the run page and its ETag read."""

    @functools.cached_property
    def _snapshot_sql(self) -> tuple[str, ...]:
        return tuple(self._compile_text(sql)
                     for sql in snapshot.run_statements(self.backend.name))

    @functools.cached_property
    def _revisions_sql(self) -> tuple[str, ...]:
        return tuple(self._compile_text(sql)
                     for sql in snapshot.revisions_statements(self.backend.name))

    def read_run(self, run_id: uuid.UUID, owner: str | None,
                 preview: int | None = None) -> RunRead | None:
        """The run and everything shown with it, or None if ``owner`` (None: anyone)
        cannot see it. With ``preview``, step inputs and outputs longer than that many
        characters are cut to it (``StepRow.input_length`` / ``output_length`` then
        give their full length)."""
        sealed = self.sealing.active  # ciphertexts are cut after they are opened
        params = {"rid": self.backend.bind_id(run_id),
                  "preview": WHOLE if sealed else preview or WHOLE}
        with translate_errors(self._where):
            found = self.backend.read_snapshot([(sql, params) for sql in self._snapshot_sql])
        (run_rows, step_rows, family_rows, usage_rows) = found
        if not run_rows or (owner is not None and run_rows[0][RUN_COLUMNS.index("owner")]
                            != owner):
            return None
        load = self.backend.load_id
        row = run_rows[0]
        columns = len(RUN_COLUMNS)
        values = dict(zip(RUN_COLUMNS, row[:columns], strict=True))
        for name in ("id", "parent_id", "forked_from"):
            values[name] = load(values[name])
        tags, context, artifacts, attempts = (_json(value) for value in row[columns:])
        run = RunRow(**values, tags=tuple(tags))
        read = RunRead(
            run=run,
            steps=[StepRow(run_id, s[1], s[2], s[3], s[4], s[5], s[7], s[9], s[10], s[11],
                           load(s[12]), None, bool(s[13]), s[6], s[8])
                   for s in step_rows],
            attempts=[AttemptRow(run_id, *a) for a in attempts],
            context=[(name, value) for name, value in context],
            artifacts=[ArtifactRow(run_id, *a) for a in artifacts],
            descendants=[self._revision(r) for r in family_rows],
            usage=[UsageRow(_id(load(u[0])), *u[1:]) for u in usage_rows],
        )
        if sealed:
            self._open_read(read, preview)
        return read

    def _open_read(self, read: RunRead, preview: int | None) -> None:
        sealing = self.sealing
        sealing.run_row(read.run)
        for step in read.steps:
            sealing.step_row(step)
            if preview:  # a payload left sealed (no key) is not cut: it is shown whole
                if _longer(step.input, preview):
                    step.input_length, step.input = len(step.input), step.input[:preview]
                if _longer(step.output, preview):
                    step.output_length, step.output = len(step.output), step.output[:preview]
        for attempt in read.attempts:
            sealing.attempt_row(attempt)
        read.context = [(name, sealing.open(value, context_aad(read.run.id, name)))
                        for name, value in read.context]

    def revisions(self, run_id: uuid.UUID) -> tuple[list[Revision], StepMarks]:
        """The revision of a run and of each descendant (the run first), with what its
        ``stalled`` note depends on, and the marks of its steps; no runs if there is
        no such run. Two statements, one snapshot, no step payload read."""
        params = {"rid": self.backend.bind_id(run_id)}
        with translate_errors(self._where):
            rows, marks = self.backend.read_snapshot([(sql, params)
                                                      for sql in self._revisions_sql])
        found = [self._revision(r) for r in rows]
        found.sort(key=lambda revision: revision.id != run_id)
        return found, StepMarks(*(int(value) for value in marks[0]))

    def _revision(self, row: tuple[Any, ...]) -> Revision:
        load = self.backend.load_id
        return Revision(_id(load(row[0])), row[1], row[2], row[3], row[4], row[5],
                        load(row[6]))


def _json(value: Any) -> list[Any]:
    """A folded JSON array (SQLite gives text, psycopg parses it; no rows: [] or NULL)."""
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else list(value)


def _id(value: uuid.UUID | None) -> uuid.UUID:
    assert value is not None  # ids of existing rows
    return value



def _longer(text: str | None, preview: int) -> TypeGuard[str]:
    return text is not None and len(text) > preview and not is_sealed(text)
