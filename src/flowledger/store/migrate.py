"""Applies Alembic migrations when a store opens, safely with several processes at once.

Opening a store at the newest revision is the common case: it reads the version table
with one plain query and never loads Alembic (whose import and script scan cost more
than the rest of opening a store). ``HEAD`` names the newest revision; a test checks it
against the migration scripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from .dialects import WRITE_OPTION, Backend

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "flowledger_alembic_version"
HEAD = "0019"  # the newest migration under migrations/versions


def alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 (start-up time: only migrating needs it)

    config = Config()
    config.set_main_option("script_location", "flowledger.store:migrations")
    return config


def head_revision() -> str:
    """The newest revision this version of flowledger knows."""
    return HEAD


def current_revision(backend: Backend) -> str | None:
    """The revision the database is at (None: no schema yet)."""
    with backend.engine.connect() as conn:
        try:
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        except (OperationalError, ProgrammingError) as exc:
            if _missing_table(exc):
                return None
            raise


def upgrade(backend: Backend) -> None:
    """Bring the schema to head. Cheap when already there: one read, no lock."""
    if current_revision(backend) == HEAD:
        return
    from alembic import command  # noqa: PLC0415 (start-up time: only migrating needs it)

    config = alembic_config()
    # One write transaction holds the migration lock (SQLite: BEGIN IMMEDIATE, PostgreSQL:
    # an advisory lock); a process that waited on it finds the schema at head and stops.
    with backend.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, \
            backend.migrating(conn), conn.begin():
        backend.lock_for_migration(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _missing_table(exc: Exception) -> bool:
    message = str(getattr(exc, "orig", exc)).lower()
    return "no such table" in message or "does not exist" in message
