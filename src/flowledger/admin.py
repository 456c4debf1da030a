"""Operator tasks on a store that must not migrate it implicitly (``flowledger db``)."""

from __future__ import annotations

from dataclasses import dataclass

from .store import SqlStore


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
    """Read the schema revision without changing anything."""
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
