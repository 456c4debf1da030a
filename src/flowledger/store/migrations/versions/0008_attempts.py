"""Every attempt of a step on record; what each step set in the run's context (so a fork
copies the context as it stood); each worker's lease (so a lost worker shows as lost).

Existing data is kept as it is: steps recorded before this revision have no attempt rows
(their earlier attempts read as ``unrecorded``) and no context of their own (a fork then
falls back to the run's context rows set before the fork point).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flowledger_attempts",
        sa.Column("run_id", sa.Uuid(),
                  sa.ForeignKey("flowledger_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("retry_at", sa.BigInteger(), nullable=True),
        sqlite_with_rowid=False,
    )
    # Plain ADD COLUMN (nullable, no default): instant on both backends, no table rewrite.
    op.add_column("flowledger_steps", sa.Column("context", sa.Text(), nullable=True))
    op.add_column("flowledger_workers", sa.Column("lease_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flowledger_workers") as batch:
        batch.drop_column("lease_us")
    with op.batch_alter_table("flowledger_steps") as batch:
        batch.drop_column("context")
    op.drop_table("flowledger_attempts")
