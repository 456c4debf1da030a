"""Artifact references (content lives in the artifact store).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowledger_artifacts",
        sa.Column("run_id", sa.Uuid(),
                  sa.ForeignKey("flowledger_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_flowledger_artifacts_digest", "flowledger_artifacts",
                    ["owner", "digest"])


def downgrade() -> None:
    op.drop_table("flowledger_artifacts")
