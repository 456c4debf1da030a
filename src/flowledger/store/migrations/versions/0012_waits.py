"""Durable waits: when a suspended run wakes and what it waits for, and the events sent
to runs (kept until a wait consumes them).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


_RUN_COLUMNS = (sa.Column("wake_at", sa.BigInteger(), nullable=True),
                sa.Column("waiting_for", sa.String(200), nullable=True))


def upgrade() -> None:
    # Plain ADD COLUMNs: batch mode would rebuild SQLite's runs table without its
    # revision triggers (0009).
    for column in _RUN_COLUMNS:
        op.add_column("flowledger_runs", column)
    op.create_index("ix_flowledger_runs_wake", "flowledger_runs", ["wake_at"],
                    sqlite_where=sa.text("status = 'waiting'"),
                    postgresql_where=sa.text("status = 'waiting'"))
    op.create_table(
        "flowledger_run_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Uuid(),
                  sa.ForeignKey("flowledger_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.Column("consumed_position", sa.Integer(), nullable=True),
        sa.Column("consumed_at", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_flowledger_run_events_run", "flowledger_run_events",
                    ["run_id", "name", "id"])


def downgrade() -> None:
    op.drop_index("ix_flowledger_run_events_run", table_name="flowledger_run_events")
    op.drop_table("flowledger_run_events")
    op.drop_index("ix_flowledger_runs_wake", table_name="flowledger_runs")
    for column in reversed(_RUN_COLUMNS):
        op.execute(f"ALTER TABLE flowledger_runs DROP COLUMN {column.name}")
