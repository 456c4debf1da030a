"""The few places SQLite and PostgreSQL differ: connecting, locking, the hot path.

The hot path is the pair of statements every step executes (begin and finish). They
run on raw DB-API connections with SQL compiled once by SQLAlchemy, because the
Core execution layer costs more per statement than a SQLite WAL commit does.

Durability (``durability=``):

- ``full`` (default): a step's *result* is committed durably (SQLite ``synchronous=FULL``,
  PostgreSQL ``synchronous_commit=on``). The *begin* marker that counts an attempt is
  committed without waiting for the disk: it survives a killed process at once and is
  made durable by the very next durable commit, since both logs are sequential. A
  database crash or power loss in that window can forget that an attempt had started
  (its attempt count is one short; the attempt simply runs again, as steps are
  at-least-once by contract).
- ``strict``: begin markers wait for the disk too (one more flush per step), so attempt
  counts survive database crashes and power loss as well.
- ``normal``: nothing waits for the disk; a database crash or power loss may lose the
  last moments of records (a killed *process* loses nothing at any level).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, Table, create_engine, event, make_url, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import ConnectionPoolEntry

from ..errors import ConfigurationError, DatabaseNotFound

Durability = Literal["strict", "full", "normal"]
BUSY_TIMEOUT_S = 30.0
WRITE_OPTION = "flowledger_write"
QUEUE_CHANNEL = "flowledger_queue"


class Backend:
    """Base for one database family; subclasses hold every dialect difference."""

    name: str
    uuid_sql_type: str
    float_sql_type: str

    def __init__(self, url: URL, durability: Durability) -> None:
        self.url = url
        self.durability = durability
        self.engine = self._create_engine()

    def _create_engine(self) -> Engine:
        raise NotImplementedError

    def bind_id(self, value: uuid.UUID | None) -> Any:
        return value

    def load_id(self, value: Any) -> uuid.UUID | None:
        """An id as the raw driver returns it, as a UUID."""
        return value  # type: ignore[no-any-return]

    def read_snapshot(self, statements: list[tuple[str, dict[str, Any]]]
                      ) -> list[list[tuple[Any, ...]]]:
        """Run read statements (driver SQL) against one snapshot of the database, on a
        raw driver connection; the rows of each."""
        raise NotImplementedError

    @contextlib.contextmanager
    def migrating(self, conn: Connection) -> Iterator[None]:
        """Around a migration's transaction (SQLite turns foreign keys off for it)."""
        yield

    def lock_for_migration(self, conn: Connection) -> None:
        """Serialize schema upgrades between processes opening the store at once."""

    def marker(self, sql: str, params: dict[str, Any]) -> int:
        """Run a begin-marker statement (fast commit); returns the row count."""
        raise NotImplementedError

    def durable(self, sql: str, params: dict[str, Any]) -> int:
        """Run a result statement with a durable commit; returns the row count."""
        raise NotImplementedError

    def marker_row(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run one statement with a marker's fast commit; its first row (RETURNING)."""
        raise NotImplementedError

    def durable_many(self, statements: list[tuple[str, dict[str, Any]]]) -> int:
        """Run statements in one durable transaction; the last one's row count decides:
        when it is 0 the whole transaction is rolled back and 0 returned."""
        raise NotImplementedError

    def insert_unless_duplicate(self, table: Table, unique: Sequence[str],
                                where: Any) -> Any:
        """An INSERT that does nothing when a row with the same ``unique`` columns (a
        partial unique index, ``where``) exists: rowcount 0 tells the caller."""
        raise NotImplementedError

    def notify(self, conn: Connection, queue: str) -> None:
        """Wake idle workers when the transaction commits (PostgreSQL NOTIFY)."""

    def listen(self, on_notify: Callable[[], None]) -> Listener | None:
        """Call ``on_notify`` when new work is announced; None where only polling works."""
        return None

    def reserve_connections(self, threads: int) -> None:
        """Keep enough pooled connections for ``threads`` concurrent executions."""

    def reserve_query_connections(self, threads: int) -> None:
        """Keep enough pooled connections for ``threads`` concurrent queries (a server)."""

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @property
    def file(self) -> Path | None:
        """The database file (SQLite), or None for a server."""
        return None

    def commit_modes(self) -> dict[str, str]:
        """How the two hot-path commits wait for the disk, as the database reports it:
        ``{"begin": ..., "result": ...}`` (SQLite ``synchronous``, PostgreSQL
        ``synchronous_commit``)."""
        raise NotImplementedError

    def close(self) -> None:
        self.engine.dispose()


class Listener:
    """A background LISTEN on the queue channel (PostgreSQL)."""

    def __init__(self, backend: PostgresBackend, on_notify: Callable[[], None]) -> None:
        self._backend = backend
        self._on_notify = on_notify
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._loop, name="flowledger-listen",
                                        daemon=True)
        self._thread.start()

    def _connect(self) -> Any:
        import psycopg  # noqa: PLC0415 (optional: the postgres extra)

        conninfo = self._backend.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        conn = psycopg.connect(conninfo, autocommit=True)
        conn.execute(f"LISTEN {QUEUE_CHANNEL}")
        return conn

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._conn is None:
                    self._conn = self._connect()
                for _ in self._conn.notifies(timeout=1.0, stop_after=1):
                    self._on_notify()
            except Exception:
                # The server went away: workers keep polling meanwhile; reconnect later.
                self._drop()
                self._stop.wait(1.0)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drop()


class SqliteBackend(Backend):
    name = "sqlite"
    uuid_sql_type = "CHAR(32)"
    float_sql_type = "REAL"

    def __init__(self, url: URL, durability: Durability, create: bool = True) -> None:
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):

            raise ConfigurationError(
                "flowledger needs a SQLite *file* (several connections share it): "
                "use sqlite:///path/to/file.db"
            )
        self.path = Path(database).expanduser().absolute()
        if not create and not self.path.exists():

            raise DatabaseNotFound(
                f"no flowledger database at {self.path}: nothing has been recorded there "
                "yet (`flowledger run` creates it; --db or FLOWLEDGER_DATABASE_URL chooses "
                "another)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:

            raise ConfigurationError(f"cannot create the folder for SQLite file {self.path}: "
                                     f"{exc.strerror or exc}") from None
        super().__init__(url.set(database=str(self.path)), durability)
        self._hot = self._connect_raw()
        self._hot_cursor = self._hot.cursor()
        self._hot_lock = threading.Lock()
        self._hot_is_full = self.durability != "normal"
        # Markers skip the disk wait unless every commit must wait (strict).
        self._marker_waits = self.durability == "strict"

    def _pragmas(self, conn: Any, synchronous: str) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _ensure_wal(conn)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")

    def _full_or_normal(self) -> str:
        return "NORMAL" if self.durability == "normal" else "FULL"

    def _create_engine(self) -> Engine:
        engine = create_engine(
            self.url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
        )
        sync = self._full_or_normal()

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            # Let us emit BEGIN ourselves: pysqlite's implicit transactions would defer
            # the write lock and fail with SQLITE_BUSY instead of waiting for it.
            dbapi_conn.isolation_level = None
            self._pragmas(dbapi_conn, sync)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def _connect_raw(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_S)
        self._pragmas(conn, self._full_or_normal())
        return conn

    def bind_id(self, value: uuid.UUID | None) -> Any:
        return None if value is None else value.hex

    def load_id(self, value: Any) -> uuid.UUID | None:
        return None if value is None else uuid.UUID(hex=value)

    @contextlib.contextmanager
    def migrating(self, conn: Connection) -> Iterator[None]:
        # A migration that rebuilds a table drops the old one: with foreign keys on, that
        # would delete every row referencing it. The pragma only works outside a
        # transaction, so it is set on the driver connection before the migration's begins
        # (and checked by the migration with PRAGMA foreign_key_check).
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            yield
        finally:
            raw.execute("PRAGMA foreign_keys = ON")

    def read_snapshot(self, statements: list[tuple[str, dict[str, Any]]]
                      ) -> list[list[tuple[Any, ...]]]:
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN")  # a WAL read transaction: one snapshot for all of them
            try:
                return [cur.execute(sql, params).fetchall() for sql, params in statements]
            finally:
                cur.execute("COMMIT")
        finally:
            raw.close()

    @property
    def file(self) -> Path | None:
        return self.path

    def insert_unless_duplicate(self, table: Table, unique: Sequence[str],
                                where: Any) -> Any:

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(unique),
                                                          index_where=where)

    def _sync(self, full: bool) -> None:
        """Switch the hot connection's synchronous mode (a cheap pragma, no I/O)."""
        if full != self._hot_is_full:
            self._hot.execute(f"PRAGMA synchronous = {'FULL' if full else 'NORMAL'}")
            self._hot_is_full = full

    def marker(self, sql: str, params: dict[str, Any]) -> int:
        with self._hot_lock:
            self._sync(self._marker_waits)
            return self._hot_cursor.execute(sql, params).rowcount

    def durable(self, sql: str, params: dict[str, Any]) -> int:
        with self._hot_lock:
            self._sync(self.durability != "normal")
            return self._hot_cursor.execute(sql, params).rowcount

    def marker_row(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._hot_lock:
            self._sync(self._marker_waits)
            rows = self._hot_cursor.execute(sql, params).fetchall()  # all: it commits
            return tuple(rows[0]) if rows else None

    def commit_modes(self) -> dict[str, str]:
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        found = {}
        with self._hot_lock:
            before = self._hot_is_full
            for kind, full in (("begin", self._marker_waits),
                               ("result", self.durability != "normal")):
                self._sync(full)
                level = self._hot.execute("PRAGMA synchronous").fetchone()[0]
                found[kind] = names.get(level, str(level))
            self._sync(before)
        return found

    def durable_many(self, statements: list[tuple[str, dict[str, Any]]]) -> int:
        with self._hot_lock:
            self._sync(self.durability != "normal")
            self._hot_cursor.execute("BEGIN IMMEDIATE")
            try:
                count = 0
                for sql, params in statements:
                    count = self._hot_cursor.execute(sql, params).rowcount
                self._hot_cursor.execute("COMMIT" if count else "ROLLBACK")
            except BaseException:
                if self._hot.in_transaction:
                    self._hot_cursor.execute("ROLLBACK")
                raise
            return count

    def close(self) -> None:
        with self._hot_lock:
            self._hot.close()
        super().close()


def _ensure_wal(conn: Any) -> None:
    """Switch a database to WAL once; it persists in the file.

    Changing the journal mode does not wait on the busy handler, so a process opening a
    new file while another one creates its schema retries here instead of failing.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)  # contention with another process, which holds no handler


class PostgresBackend(Backend):
    name = "postgresql"
    _main_pool_size = 5  # grown by reserve_query_connections
    uuid_sql_type = "UUID"
    float_sql_type = "DOUBLE PRECISION"

    def __init__(self, url: URL, durability: Durability) -> None:
        super().__init__(url, durability)
        self._pool_size = 5
        self._open_hot_engines()

    def _open_hot_engines(self) -> None:
        fast = {"options": "-c synchronous_commit=off"}
        self._marker_engine = self._autocommit_engine(
            {} if self.durability == "strict" else fast)
        self._durable_engine = self._autocommit_engine(
            fast if self.durability == "normal" else {})

    def reserve_connections(self, threads: int) -> None:
        # Connections beyond the pool size are closed on return and reopened on the next
        # step: with more threads than that, a worker spends its time connecting.
        if threads <= self._pool_size:
            return
        old = (self._marker_engine, self._durable_engine)
        self._pool_size = threads
        self._open_hot_engines()
        for engine in old:
            engine.dispose()

    def reserve_query_connections(self, threads: int) -> None:
        # As for steps: a connection beyond the pool size is closed when returned, so a
        # server with more request threads than that would connect on most requests.
        if threads <= self._main_pool_size:
            return
        old = self.engine
        self._main_pool_size = threads
        self.engine = self._create_engine()
        old.dispose()

    def _create_engine(self) -> Engine:
        args = ({"options": "-c synchronous_commit=off"} if self.durability == "normal"
                else {})
        # Pre-ping costs a round trip per checkout, affordable off the step hot path, and
        # lets run creation and queries survive a server restart between two calls.
        return create_engine(self.url, connect_args=args, pool_size=self._main_pool_size,
                             max_overflow=20, pool_pre_ping=True)

    def _autocommit_engine(self, connect_args: dict[str, Any]) -> Engine:
        engine = create_engine(self.url, connect_args=connect_args, pool_size=self._pool_size,
                               max_overflow=50, pool_reset_on_return=None)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            dbapi_conn.autocommit = True

        return engine

    def lock_for_migration(self, conn: Connection) -> None:
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7270121001)")

    def insert_unless_duplicate(self, table: Table, unique: Sequence[str],
                                where: Any) -> Any:

        return postgresql_insert(table).on_conflict_do_nothing(index_elements=list(unique),
                                                              index_where=where)

    def notify(self, conn: Connection, queue: str) -> None:
        conn.execute(text(f"SELECT pg_notify('{QUEUE_CHANNEL}', :queue)"), {"queue": queue})

    def listen(self, on_notify: Callable[[], None]) -> Listener | None:
        return Listener(self, on_notify)

    @staticmethod
    def _run(engine: Engine, sql: str, params: dict[str, Any]) -> int:
        for attempt in (1, 2):
            raw = engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(sql, params)
                return int(cur.rowcount)
            except Exception:
                if not _is_broken(raw) or attempt == 2:
                    raise
                # The server dropped this connection, likely its pooled siblings too (a
                # restart, a failover): start the pool afresh and try once more. Both hot
                # statements may be repeated: the result is idempotent, and a repeated
                # begin at worst counts one attempt too many.
                raw.invalidate()
                engine.dispose()
            finally:
                raw.close()
        raise AssertionError("unreachable")

    def marker(self, sql: str, params: dict[str, Any]) -> int:
        return self._run(self._marker_engine, sql, params)

    def marker_row(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        raw = self._marker_engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else tuple(row)
        finally:
            raw.close()

    def commit_modes(self) -> dict[str, str]:
        found = {}
        for kind, engine in (("begin", self._marker_engine), ("result", self._durable_engine)):
            raw = engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("SHOW synchronous_commit")
                row = cur.fetchone()
                found[kind] = str(row[0]) if row else "?"
            finally:
                raw.close()
        return found

    def durable(self, sql: str, params: dict[str, Any]) -> int:
        return self._run(self._durable_engine, sql, params)

    def read_snapshot(self, statements: list[tuple[str, dict[str, Any]]]
                      ) -> list[list[tuple[Any, ...]]]:
        with _driver_of(self.engine) as driver:
            # One round trip: BEGIN, the reads and COMMIT pipelined, in a repeatable-read
            # transaction so every statement sees the same snapshot.
            driver.autocommit = True
            try:
                cursors = []
                with driver.pipeline():
                    driver.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    for sql, params in statements:
                        cursors.append(driver.execute(sql, params))
                    driver.execute("COMMIT")
                return [cur.fetchall() for cur in cursors]
            finally:
                driver.rollback()  # nothing to do unless a statement failed mid-way
                driver.autocommit = False

    def durable_many(self, statements: list[tuple[str, dict[str, Any]]]) -> int:
        import psycopg  # noqa: PLC0415 (optional: the postgres extra)

        with _driver_of(self._durable_engine) as driver, \
                driver.transaction() as transaction:
            count = 0
            cur = driver.cursor()
            for sql, params in statements:
                cur.execute(sql, params)
                count = cur.rowcount
            if not count:
                raise psycopg.Rollback(transaction)  # caught by the block: no commit
        return int(count)

    def close(self) -> None:
        self._marker_engine.dispose()
        self._durable_engine.dispose()
        super().close()


@contextlib.contextmanager
def _driver_of(engine: Engine) -> Iterator[Any]:
    """A pooled connection's psycopg connection, for statements SQLAlchemy need not see;
    one the server dropped is invalidated rather than returned to the pool."""
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        yield driver
    except BaseException:
        if _is_broken(raw):
            raw.invalidate()
        raise
    finally:
        raw.close()


def _is_broken(raw: Any) -> bool:
    conn = getattr(raw, "driver_connection", None)
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))


def open_backend(url: str, durability: Durability, create: bool = True) -> Backend:
    """Pick the backend for a URL; ``postgresql://`` uses psycopg 3. Without ``create``
    a missing SQLite file is DatabaseNotFound rather than a new, empty database."""

    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(f"not a database URL: {url!r} ({exc})") from None
    if durability not in ("strict", "full", "normal"):
        raise ConfigurationError(f"durability must be 'strict', 'full' or 'normal', "
                                 f"not {durability!r}")
    family = parsed.get_backend_name()
    if family == "sqlite":
        return SqliteBackend(parsed, durability, create)
    if family in ("postgresql", "postgres"):
        driver = parsed.drivername.partition("+")[2]
        if driver not in ("psycopg", ""):
            raise ConfigurationError(f"unsupported PostgreSQL driver {driver!r}: use psycopg")
        try:
            import psycopg  # noqa: F401, PLC0415 (optional: the postgres extra)
        except ImportError:
            raise ConfigurationError(
                "PostgreSQL needs psycopg 3: pip install 'flowledger[postgres]'"
            ) from None
        return PostgresBackend(parsed.set(drivername="postgresql+psycopg"), durability)
    raise ConfigurationError(
        f"unsupported database {family!r} in {url!r}: use sqlite:///file.db or postgresql://…"
    )
