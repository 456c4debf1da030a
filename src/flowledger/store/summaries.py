"""Run listings for people: pages of summaries (``statements/summaries.py``), each shape
of listing compiled once, run as one statement on a raw driver connection. A part of
``SqlStore``."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from .core import StoreCore
from .rows import RunFilter
from .sealing import run_aad
from .statements import summaries as summaries_sql
from .translate import translate_errors

_ID_PARAMS = ("parent", "forked_from", "before", "since_id", "until_id")


class StoreSummaries(StoreCore):
    """``run_summaries`` and ``run_marks``: what run lists and their ETags read."""

    @functools.cached_property
    def _listings(self) -> dict[tuple[str, summaries_sql.Shape], tuple[str, dict[str, Any]]]:
        return {}

    def run_summaries(self, flt: RunFilter, limit: int,
                      before_id: uuid.UUID | None) -> list[tuple[Any, ...]]:
        """A page of summaries, newest first (``SUMMARY_COLUMNS``, total, completed,
        failed, skipped, tags, calls, tokens, cost); ids as the driver returns them
        (``backend.load_id`` reads them)."""
        rows = self._listing("summaries", flt, limit, before_id)
        if not self.sealing.active:
            return rows
        where = summaries_sql.SUMMARY_COLUMNS.index("error")
        load, opened = self.backend.load_id, self.sealing.open
        return [(*row[:where], opened(row[where], run_aad("error", load(row[0]))),
                 *row[where + 1:]) for row in rows]

    def run_marks(self, flt: RunFilter, limit: int,
                  before_id: uuid.UUID | None) -> list[tuple[Any, ...]]:
        """The same page, light (``MARK_COLUMNS`` and the four counts)."""
        return self._listing("marks", flt, limit, before_id)

    def _listing(self, kind: str, flt: RunFilter, limit: int,
                 before_id: uuid.UUID | None) -> list[tuple[Any, ...]]:
        shape = summaries_sql.Shape.of(flt, before_id)
        compiled = self._listings.get((kind, shape))
        if compiled is None:
            statement = (summaries_sql.summaries(shape, self.backend.name)
                         if kind == "summaries" else summaries_sql.marks(shape))
            sql = self._compile_statement(statement)
            # Parameters SQLAlchemy named itself (an OFFSET 0) keep their values.
            defaults = dict(statement.compile(dialect=self.backend.engine.dialect).params)
            compiled = self._listings[(kind, shape)] = (sql, defaults)
        sql, defaults = compiled
        values = {**defaults, **summaries_sql.params(flt, limit, before_id)}
        for name in _ID_PARAMS:
            values[name] = self.backend.bind_id(values.get(name))
        with translate_errors(self._where):
            (rows,) = self.backend.read_snapshot([(sql, values)])
        return rows
