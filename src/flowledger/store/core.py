"""``StoreCore``: what every part of the store shares.

Opening the backend (and migrating its schema), connections for reads and writes, the
raw hot path's error translation and SQL compilation, and the run writes several parts
make (inserting a run, failing one). ``SqlStore`` is assembled from the parts that
subclass it: ``StoreReads``, ``StoreQueues``, ``StoreTokens``, ``StoreProgress``,
``StoreWebhooks``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from ..errors import DatabaseNotFound
from . import history, migrate
from .dialects import WRITE_OPTION, Backend, Durability, open_backend
from .rows import NewRun, SpecRow
from .sealing import NO_SEALING, NoSealing, run_aad
from .statements import runs as runs_sql
from .statements import specs as specs_sql
from .statements.steps import driver_sql
from .translate import Where, safe_url, store_error, translate_errors

# A spec workflow's runs have ``spec:<digest of its text>`` as their entrypoint.
SPEC_ENTRYPOINT = "spec:"


class StoreCore:
    """Storage over SQLAlchemy Core. Open with a URL; migrations are applied on open."""

    backend: Backend
    # Seals payload columns on write and opens them on read (encryption at rest).
    sealing: NoSealing = NO_SEALING

    def __init__(self, url: str, *, durability: Durability = "full",
                 migrate_schema: bool = True, create: bool = True) -> None:
        with translate_errors(Where("the store", safe_url(url))):
            self.backend = open_backend(url, durability, create)
        self._where = Where(f"{self.backend.name} store", self.backend.describe())
        if not create:
            with translate_errors(self._where):
                found = migrate.current_revision(self.backend)
            if found is None:  # a file or database, but not flowledger's: leave it be
                self.backend.close()
                raise DatabaseNotFound(
                    f"no flowledger database at {self._database_name()}: it has no "
                    "flowledger tables (`flowledger run` or `flowledger db upgrade` "
                    "creates them; --db or FLOWLEDGER_DATABASE_URL chooses another)")
        if migrate_schema:
            with translate_errors(self._where):
                migrate.upgrade(self.backend)

    def _database_name(self) -> str:
        """The SQLite file, or PostgreSQL's database name (never a URL: messages show it)."""
        path = self.backend.file
        return str(path) if path is not None else \
            f"PostgreSQL database {self.backend.url.database!r}"

    @property
    def dialect(self) -> str:
        return self.backend.name

    def schema_revision(self) -> tuple[str | None, str | None]:
        """(revision the database is at, newest revision this code knows)."""
        with translate_errors(self._where):
            return migrate.current_revision(self.backend), migrate.head_revision()

    def upgrade_schema(self) -> None:
        with translate_errors(self._where):
            migrate.upgrade(self.backend)

    def close(self) -> None:
        self.backend.close()

    # -- connections ---------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with translate_errors(self._where), self.backend.engine.connect().execution_options(
            **{WRITE_OPTION: True}
        ) as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with translate_errors(self._where), self.backend.engine.connect() as conn, conn.begin():
            yield conn

    # -- the raw hot path ------------------------------------------------------------
    def _hot(self, run: Callable[[str, dict[str, Any]], int], sql: str,
             params: dict[str, Any]) -> int:
        try:
            return run(sql, params)
        except Exception as exc:
            raise store_error(self._where, exc) from exc

    def _compile_statement(self, statement: Any) -> str:
        """A Core statement as driver SQL with named parameters, for the raw hot path."""
        if self.backend.name == "sqlite":
            return str(statement.compile(dialect=sqlite_dialect(paramstyle="named")))
        return str(statement.compile(dialect=self.backend.engine.dialect))

    def _compile_text(self, sql: str) -> str:
        """Text SQL with ``:name`` parameters in the driver's paramstyle."""
        if self.backend.name == "sqlite":
            return sql  # sqlite3 understands :name natively
        return driver_sql(sql, self.backend.engine.dialect)

    # -- runs ----------------------------------------------------------------------
    def _run_params(self, run: NewRun) -> dict[str, Any]:
        bind = self.backend.bind_id
        return {
            "id": bind(run.id), "workflow": run.workflow, "version": run.version,
            "entrypoint": run.entrypoint, "owner": run.owner, "status": run.status,
            "serializer": run.serializer, "created_at": run.created_at,
            "inputs": self.sealing.seal(run.inputs, run_aad("inputs", run.id), owner=run.owner),
            "started_at": run.created_at if run.status == "running" else None,
            "deadline_at": run.deadline_at, "parent_id": bind(run.parent_id),
            "forked_from": bind(run.forked_from),
            "forked_from_position": run.forked_from_position,
            "executor": run.executor, "lease_token": run.lease_token,
            "traceparent": run.traceparent, **_queue_params(run),
        }

    def _insert_run(self, conn: Connection, run: NewRun, *,
                    unless_duplicate: bool = False) -> bool:
        """Insert a run and its tags. With ``unless_duplicate`` a run whose idempotency key
        the owner already used is not inserted, and False is returned."""
        values = {**self._run_params(run), "id": run.id, "parent_id": run.parent_id,
                  "forked_from": run.forked_from}
        if unless_duplicate:
            # RETURNING, not rowcount: drivers do not all report a skipped row as 0.
            statement = runs_sql.insert_unless_duplicate(self.backend)
            if conn.execute(statement, values).first() is None:
                return False
        else:
            conn.execute(runs_sql.INSERT_RUN, values)
        if run.spec_text is not None:
            conn.execute(specs_sql.SAVE_TEXT, specs_sql.text_params(SpecRow(
                run.owner, run.entrypoint.removeprefix(SPEC_ENTRYPOINT), run.workflow,
                run.version, run.spec_text, run.created_at, None)))
        if run.tags:
            conn.execute(runs_sql.INSERT_TAGS, [{"tag": t, "run_id": run.id} for t in run.tags])
        return True

    def _fail_run(self, conn: Connection, run_id: uuid.UUID, error_text: str,
                  now: int) -> None:
        """Fail a run regardless of who holds it (steps left running are interrupted)."""
        params = {"rid": run_id, "now": now}
        why = history.ended_run("failed")
        history.record_interrupted(conn, run_id, now, why)
        conn.execute(runs_sql.INTERRUPT_STEPS, {**params, "why": why})
        conn.execute(runs_sql.FINISH_RUN, {**params, "new_status": "failed",
                                           "new_output": None, "new_error": error_text})


def _queue_params(run: NewRun) -> dict[str, Any]:
    return {"queue": run.queue, "priority": run.priority, "scheduled_at": run.scheduled_at,
            "idempotency_key": run.idempotency_key, "concurrency_key": run.concurrency_key}
