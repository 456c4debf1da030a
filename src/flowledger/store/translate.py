"""Driver errors become flowledger errors at the storage boundary, in one line."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from ..errors import StoreError, StoreUnavailable


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Driver errors become StoreUnavailable at this boundary, with a readable message."""
    try:
        yield
    except Exception as exc:
        raise store_error(where, exc) from exc


def store_error(where: str, exc: Exception) -> Exception:
    """The flowledger error for a driver error; any other exception is returned as is.

    Lost or refused connections (and a busy SQLite file) are StoreUnavailable; anything
    else the database refuses is StoreError.
    """
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    message = f"{where}: {_first_line(original)}"
    unavailable = (OperationalError, InterfaceError, sqlite3.OperationalError,
                   sqlite3.ProgrammingError)
    if isinstance(exc, unavailable) or type(original).__name__ in (
            "OperationalError", "InterfaceError"):
        return StoreUnavailable(message)
    if isinstance(exc, SQLAlchemyError | sqlite3.Error) or type(exc).__module__.startswith(
            "psycopg"):
        return StoreError(message)
    return exc


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
