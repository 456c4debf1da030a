"""Initial schema: runs, steps, run tags.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowledger_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("entrypoint", sa.String(1000), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("serializer", sa.String(50), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("deadline_at", sa.BigInteger(), nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completed_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("recovery_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("forked_from", sa.Uuid(), nullable=True),
        sa.Column("forked_from_position", sa.Integer(), nullable=True),
        sa.Column("resumed_at", sa.BigInteger(), nullable=True),
        sa.Column("resumed_from_position", sa.Integer(), nullable=True),
        sa.Column("executor", sa.String(300), nullable=True),
        sa.Column("lease_token", sa.String(32), nullable=True),
    )
    op.create_index("ix_flowledger_runs_status", "flowledger_runs", ["status", "id"])
    op.create_index("ix_flowledger_runs_workflow", "flowledger_runs",
                    ["workflow", "status", "id"])
    op.create_index("ix_flowledger_runs_owner", "flowledger_runs", ["owner", "status", "id"])
    op.create_index("ix_flowledger_runs_parent", "flowledger_runs", ["parent_id"])
    op.create_table(
        "flowledger_steps",
        sa.Column("run_id", sa.Uuid(),
                  sa.ForeignKey("flowledger_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("child_run_id", sa.Uuid(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "flowledger_run_tags",
        sa.Column("tag", sa.String(200), primary_key=True),
        sa.Column("run_id", sa.Uuid(),
                  sa.ForeignKey("flowledger_runs.id", ondelete="CASCADE"), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_flowledger_run_tags_run", "flowledger_run_tags", ["run_id"])


def downgrade() -> None:
    op.drop_table("flowledger_run_tags")
    op.drop_table("flowledger_steps")
    op.drop_table("flowledger_runs")
