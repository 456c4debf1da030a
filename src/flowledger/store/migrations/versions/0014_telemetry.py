"""Telemetry: what each step attempt logged, and the trace a run belongs to.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: batch mode would rebuild SQLite's runs table without its revision
    # triggers (0009).
    op.add_column("flowledger_runs", sa.Column("traceparent", sa.String(55), nullable=True))
    op.create_table(
        "flowledger_step_logs",
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("records", sa.Text(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("written_at", sa.BigInteger(), nullable=False),
        # A rowid table on SQLite: its rows are kilobytes of JSON, which a WITHOUT ROWID
        # table keeps in its key's B-tree (about twice the cost per insert, measured).
    )


def downgrade() -> None:
    op.drop_table("flowledger_step_logs")
    op.execute("ALTER TABLE flowledger_runs DROP COLUMN traceparent")
