"""Paused queues: workers claim none of a paused queue's runs.

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


def upgrade() -> None:
    op.create_table(
        "flowledger_queue_pauses",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("paused_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("flowledger_queue_pauses")
