"""Applies Alembic migrations when a store opens, safely with several processes at once."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .dialects import WRITE_OPTION, Backend

VERSION_TABLE = "flowledger_alembic_version"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "flowledger.store:migrations")
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(backend: Backend) -> str | None:
    with backend.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(backend: Backend) -> None:
    """Bring the schema to head. Cheap when already there: one read, no lock."""
    head = head_revision()
    if current_revision(backend) == head:
        return
    config = alembic_config()
    # One write transaction holds the migration lock (SQLite: BEGIN IMMEDIATE, PostgreSQL:
    # an advisory lock); a process that waited on it finds the schema at head and stops.
    with backend.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, \
            conn.begin():
        backend.lock_for_migration(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
