"""Per-owner data keys for encryption at rest (crypto-shredding).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowledger_owner_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("secret", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("shredded_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_flowledger_owner_keys_owner", "flowledger_owner_keys",
                    ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_flowledger_owner_keys_owner", "flowledger_owner_keys")
    op.drop_table("flowledger_owner_keys")
