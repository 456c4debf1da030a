"""Retention policies, and leases that one process at a time holds (applying them).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowledger_retention_policies",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workflow", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("statuses", sa.String(100), nullable=False),
        sa.Column("keep_us", sa.BigInteger(), nullable=False),
        sa.Column("archive", sa.String(2000), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "flowledger_leases",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flowledger_leases")
    op.drop_table("flowledger_retention_policies")
