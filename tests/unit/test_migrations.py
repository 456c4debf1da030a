"""The Alembic migrations build exactly the schema declared in store/schema.py."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import flowledger as fl
from flowledger.store.migrate import VERSION_TABLE, head_revision
from flowledger.store.schema import metadata


def test_migrated_schema_matches_the_declared_one(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger, ledger.store.backend.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == head_revision()
        differences = [d for d in compare_metadata(context, metadata)
                       if not (isinstance(d, tuple) and d[0] == "remove_table"
                               and d[1].name == VERSION_TABLE)]
        assert differences == []


def test_reopening_is_a_no_op(db_url: str) -> None:
    with fl.Ledger(db_url):
        pass
    with fl.Ledger(db_url) as again, again.store.backend.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == head_revision()
