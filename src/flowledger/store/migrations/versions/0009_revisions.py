"""A revision number on every run, bumped by each write to the run's row, attempts, usage,
context or artifacts, so readers can tell "unchanged" cheaply (HTTP ETags, the UI's
polling); an index for listing by queue.

On SQLite the runs table is also rebuilt with its inputs and output last: SQLite reads a
row's columns in order, walking the overflow pages of every large value before the
column asked for, so run listings (which never read payloads) cost as much as the
payloads were large. After the rebuild they stop before them.

The bumps are triggers, so no writer can forget one. Step writes bump nothing: they are
the hot path (a trigger cost SQLite ~15 µs a write, 40% of a step), and readers derive
their part from the steps' own counts and times instead (``statements/snapshot.py``).
Existing runs start at revision 0.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (table, events whose rows change what a run reads back); deletes of attempts and usage
# only happen with their run, so they bump nothing.
_CHILD_TABLES = (("flowledger_attempts", ("INSERT", "UPDATE")),
                 ("flowledger_usage", ("INSERT",)),
                 ("flowledger_context", ("INSERT", "UPDATE", "DELETE")),
                 ("flowledger_artifacts", ("INSERT", "UPDATE", "DELETE")))

_PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION flowledger_bump_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE flowledger_runs SET revision = revision + 1 WHERE id = OLD.run_id;
        RETURN OLD;
    END IF;
    UPDATE flowledger_runs SET revision = revision + 1 WHERE id = NEW.run_id;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION flowledger_run_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revision = OLD.revision THEN
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
END $$;
"""


def _trigger_name(table: str, event: str) -> str:
    return f"{table}_{event.lower()}_revision"


def _payloads_last() -> None:
    """Rebuild SQLite's runs table with ``inputs`` and ``output`` as its last columns,
    keeping every row, index and constraint (the migration runs with foreign keys off,
    so dropping the old table deletes no step: ``migrate.upgrade`` sees to it)."""
    conn = op.get_bind()
    columns = conn.exec_driver_sql("PRAGMA table_xinfo(flowledger_runs)").all()
    indexes = [row[0] for row in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'flowledger_runs' AND sql IS NOT NULL")]
    ordered = sorted(columns, key=lambda c: c[1] in ("inputs", "output"))
    definitions = [f"{c[1]} {c[2]}" + (f" DEFAULT {c[4]}" if c[4] is not None else "")
                   + (" NOT NULL" if c[3] else "") for c in ordered]
    names = ", ".join(c[1] for c in ordered)
    conn.exec_driver_sql(f"CREATE TABLE flowledger_runs_rebuilt ({', '.join(definitions)}, "
                         "PRIMARY KEY (id))")
    conn.exec_driver_sql(f"INSERT INTO flowledger_runs_rebuilt ({names}) "
                         f"SELECT {names} FROM flowledger_runs")
    conn.exec_driver_sql("DROP TABLE flowledger_runs")
    conn.exec_driver_sql("ALTER TABLE flowledger_runs_rebuilt RENAME TO flowledger_runs")
    for index in indexes:
        conn.exec_driver_sql(index)
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"rebuilding flowledger_runs broke references: {broken[:5]}")


def upgrade() -> None:
    # A constant default: instant on both backends (no table rewrite).
    op.add_column("flowledger_runs", sa.Column("revision", sa.BigInteger(), nullable=False,
                                               server_default="0"))
    if op.get_context().dialect.name == "sqlite":
        _payloads_last()
    # Partial: runs started in-process (no queue) pay nothing for it.
    op.create_index("ix_flowledger_runs_queue", "flowledger_runs", ["queue", "id"],
                    sqlite_where=sa.text("queue IS NOT NULL"),
                    postgresql_where=sa.text("queue IS NOT NULL"))
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PG_FUNCTIONS)
        op.execute("CREATE TRIGGER flowledger_runs_update_revision BEFORE UPDATE ON "
                   "flowledger_runs FOR EACH ROW EXECUTE FUNCTION flowledger_run_revision()")
        for table, events in _CHILD_TABLES:
            op.execute(f"CREATE TRIGGER {table}_revision AFTER {' OR '.join(events)} ON "
                       f"{table} FOR EACH ROW EXECUTE FUNCTION flowledger_bump_revision()")
        return
    # SQLite: one trigger per event; recursive triggers are off, and the WHEN clause
    # keeps the run's own trigger from counting the bump it makes.
    op.execute("CREATE TRIGGER flowledger_runs_update_revision AFTER UPDATE ON "
               "flowledger_runs WHEN NEW.revision = OLD.revision BEGIN "
               "UPDATE flowledger_runs SET revision = OLD.revision + 1 WHERE id = NEW.id; END")
    for table, events in _CHILD_TABLES:
        for event in events:
            row = "OLD" if event == "DELETE" else "NEW"
            op.execute(f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON "
                       f"{table} BEGIN UPDATE flowledger_runs SET revision = revision + 1 "
                       f"WHERE id = {row}.run_id; END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS flowledger_runs_update_revision ON flowledger_runs")
        for table, _events in _CHILD_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_revision ON {table}")
        op.execute("DROP FUNCTION IF EXISTS flowledger_bump_revision()")
        op.execute("DROP FUNCTION IF EXISTS flowledger_run_revision()")
    else:
        op.execute("DROP TRIGGER IF EXISTS flowledger_runs_update_revision")
        for table, events in _CHILD_TABLES:
            for event in events:
                op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)}")
    op.drop_index("ix_flowledger_runs_queue", "flowledger_runs")
    with op.batch_alter_table("flowledger_runs") as batch:
        batch.drop_column("revision")
