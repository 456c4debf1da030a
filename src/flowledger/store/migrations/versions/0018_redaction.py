"""Redaction at record time: steps whose recorded output or context was redacted.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 1: redaction changed the step's output or context values, so a resume executes it
    # again instead of replaying them (docs/redaction.md). Steps recorded before: 0.
    op.add_column("flowledger_steps", sa.Column("redacted", sa.Integer(), nullable=False,
                                                server_default=sa.text("0")))


def downgrade() -> None:
    op.execute("ALTER TABLE flowledger_steps DROP COLUMN redacted")
