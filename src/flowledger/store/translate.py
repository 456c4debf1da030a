"""Driver errors become flowledger errors at the storage boundary, in one line.

Messages name the store (``postgresql store``), never its URL: they reach HTTP answers
and CLI output. The URL (password hidden) travels on the error as ``database``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from ..errors import StoreError, StoreFull, StoreUnavailable


@dataclass(frozen=True)
class Where:
    """Which store an error happened in: a label for messages, the URL for debugging."""

    label: str
    database: str | None = None

    def __str__(self) -> str:
        return self.label


@contextlib.contextmanager
def translate_errors(where: Where | str) -> Iterator[None]:
    """Driver errors become StoreUnavailable at this boundary, with a readable message."""
    try:
        yield
    except Exception as exc:
        raise store_error(where, exc) from exc


def store_error(where: Where | str, exc: Exception) -> Exception:
    """The flowledger error for a driver error; any other exception is returned as is.

    A full disk is StoreFull; lost or refused connections (and a busy SQLite file) are
    StoreUnavailable; anything else the database refuses is StoreError.
    """
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    database = where.database if isinstance(where, Where) else None
    reason = _first_line(original)
    message = f"{where}: {reason}"
    if _disk_full(original, reason):
        return StoreFull(f"{where}: the disk holding the database is full ({reason}); "
                         "nothing more can be recorded until space is freed (purge old "
                         "runs, or grow the disk)", database)
    unavailable = (OperationalError, InterfaceError, sqlite3.OperationalError,
                   sqlite3.ProgrammingError)
    if isinstance(exc, unavailable) or type(original).__name__ in (
            "OperationalError", "InterfaceError"):
        return StoreUnavailable(message, database)
    if isinstance(exc, SQLAlchemyError | sqlite3.Error) or type(exc).__module__.startswith(
            "psycopg"):
        return StoreError(message, database)
    return exc


def _disk_full(original: BaseException, reason: str) -> bool:
    """SQLITE_FULL, or PostgreSQL's disk_full (SQLSTATE 53100)."""
    if getattr(original, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    return getattr(original, "sqlstate", None) == "53100" or \
        "database or disk is full" in reason


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
