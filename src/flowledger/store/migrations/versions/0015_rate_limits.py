"""Shared rate limits: GCRA buckets for named limits, queue and per-key claim rates.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_QUEUE_COLUMNS = ("rate_units", "rate_period_us", "key_rate_units", "key_rate_period_us")


def upgrade() -> None:
    # Plain ADD COLUMN (never batch mode, which would rebuild the table on SQLite).
    for name in _QUEUE_COLUMNS:
        op.add_column("flowledger_queues", sa.Column(name, sa.BigInteger(), nullable=True))
    op.create_table(
        "flowledger_rate_limits",
        sa.Column("scope", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("period_us", sa.BigInteger(), nullable=False),
        sa.Column("burst", sa.BigInteger(), nullable=False),
        sa.Column("tat", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flowledger_rate_limits")
    for name in _QUEUE_COLUMNS:
        op.execute(f"ALTER TABLE flowledger_queues DROP COLUMN {name}")
