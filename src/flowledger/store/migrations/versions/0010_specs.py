"""Workflow spec texts (by owner and content digest, some registered by name), the LLM
response cache, and a cache-hit flag on usage records.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowledger_specs",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_flowledger_specs_name", "flowledger_specs",
                    ["owner", "name", "registered_at"])
    op.create_table(
        "flowledger_llm_cache",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    # A plain ADD COLUMN on both backends: batch mode would rebuild the SQLite table and
    # drop the revision triggers migration 0009 put on it.
    op.add_column("flowledger_usage", sa.Column("cache_hit", sa.Integer(), nullable=False,
                                                server_default=sa.text("0")))


def downgrade() -> None:
    op.execute("ALTER TABLE flowledger_usage DROP COLUMN cache_hit")
    op.drop_table("flowledger_llm_cache")
    op.drop_index("ix_flowledger_specs_name", table_name="flowledger_specs")
    op.drop_table("flowledger_specs")
