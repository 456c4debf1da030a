"""Operator tasks on a store that must not migrate it implicitly (``flowledger db``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from .store import SqlStore, head_revision


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against this version of flowledger."""

    url: str
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_status(url: str) -> SchemaStatus:
    """Read the schema revision without changing anything (a missing SQLite file is
    reported as having no schema, and is not created)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database \
            and not Path(parsed.database).expanduser().exists():
        return SchemaStatus(parsed.render_as_string(hide_password=True), None, head_revision())
    store = SqlStore(url, migrate_schema=False)
    try:
        current, head = store.schema_revision()
        return SchemaStatus(store.backend.describe(), current, head)
    finally:
        store.close()


def upgrade(url: str) -> SchemaStatus:
    """Apply pending migrations (also done whenever a Ledger opens the store)."""
    store = SqlStore(url, migrate_schema=False)
    try:
        store.upgrade_schema()
        current, head = store.schema_revision()
        return SchemaStatus(store.backend.describe(), current, head)
    finally:
        store.close()
