"""Pauses: paused queues (workers claim none of their runs), and when, why and by whom
a run was paused.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


_RUN_COLUMNS = (sa.Column("paused_at", sa.BigInteger(), nullable=True),
                sa.Column("pause_reason", sa.String(500), nullable=True),
                sa.Column("paused_by", sa.String(200), nullable=True))


def upgrade() -> None:
    # Plain ADD COLUMNs: batch mode would rebuild SQLite's runs table without its
    # revision triggers (0009).
    for column in _RUN_COLUMNS:
        op.add_column("flowledger_runs", column)
    op.create_table(
        "flowledger_queue_pauses",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("paused_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("flowledger_queue_pauses")
    for column in reversed(_RUN_COLUMNS):
        op.execute(f"ALTER TABLE flowledger_runs DROP COLUMN {column.name}")
