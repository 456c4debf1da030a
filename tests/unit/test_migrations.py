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


def test_upgrade_from_the_first_revision_keeps_data(db_url: str) -> None:
    """A database created by 0.1's first schema is upgraded in place on open."""
    from alembic import command
    from sqlalchemy import inspect, text

    from flowledger.store import SqlStore
    from flowledger.store.migrate import alembic_config
    from tests.helpers.cli_flows import greet

    with fl.Ledger(db_url) as ledger:
        ledger.run(greet, "kept")
    store = SqlStore(db_url, migrate_schema=False)
    first = {"flowledger_runs", "flowledger_steps", "flowledger_run_tags", VERSION_TABLE}
    with store.backend.engine.begin() as conn:  # back to what revision 0001 created
        for table in set(inspect(conn).get_table_names()) - first:
            conn.execute(text(f"DROP TABLE {table}"))
    config = alembic_config()
    with store.backend.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.stamp(config, "0001")
    store.close()

    with fl.Ledger(db_url) as ledger:  # opening upgrades to head
        assert ledger.store.schema_revision() == (head_revision(), head_revision())
        [run] = ledger.runs(workflow="cli_greet").runs
        assert run.output == {"greeting": "KEPT!"}
        assert ledger.get(run.id).usage is not None  # the new table answers
