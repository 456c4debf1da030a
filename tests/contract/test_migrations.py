"""The Alembic migrations build exactly the schema declared in store/schema.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import flowledger as fl
from flowledger import ids
from flowledger.store import SqlStore
from flowledger.store.migrate import VERSION_TABLE, alembic_config, head_revision
from flowledger.store.schema import metadata
from tests.conftest import create_pg_database, drop_pg_database, pg_url


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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_from_the_first_revision_keeps_data(backend: str, tmp_path: Path) -> None:
    """A database built by revision 0001 (and holding a run) is upgraded in place on open."""


    name = create_pg_database("flowledger_upgrade") if backend == "postgresql" else ""
    url = pg_url(name) if name else f"sqlite:///{tmp_path / 'old.db'}"
    try:
        store = SqlStore(url, migrate_schema=False)
        config = alembic_config()
        with store.backend.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        run_id = ids.new_run_id()
        with store.backend.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO flowledger_runs (id, workflow, version, entrypoint, owner, status,"
                " serializer, inputs, output, created_at, total_steps, completed_steps,"
                " failed_steps, skipped_steps, recovery_attempts) VALUES (:id, 'old', '1',"
                " 'm:f', 'default', 'completed', 'json', '{}', '42', 1, 0, 0, 0, 0, 0)"),
                {"id": run_id.hex if backend == "sqlite" else run_id})
            conn.execute(text(
                "INSERT INTO flowledger_steps (run_id, position, name, status, attempts,"
                " output, started_at, completed_at) VALUES (:id, 1, 'old_step', 'completed',"
                " 3, '42', 10, 20)"), {"id": run_id.hex if backend == "sqlite" else run_id})
        store.close()
        with fl.Ledger(url) as ledger:  # opening upgrades to head
            assert ledger.store.schema_revision() == (head_revision(), head_revision())
            run = ledger.get(str(run_id))
            assert (run.workflow, run.output) == ("old", 42)
            assert run.usage is not None and run.context == {}  # the new tables answer
            assert ledger.artifacts(run.id).list() == []
            # Attempts before the last one were not kept then: they say so.
            assert [(a.number, a.outcome) for a in run.steps[0].attempt_history] == [
                (1, "unrecorded"), (2, "unrecorded"), (3, "completed")]
    finally:
        if name:
            drop_pg_database(name)
