"""Schedules in a time zone, paused schedules; an index for listing a run's forks.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: the cron expression is read in UTC (every schedule stored before 0016).
    op.add_column("flowledger_schedules", sa.Column("timezone", sa.String(64), nullable=True))
    # Set while the schedule is paused: workers fire none of its ticks.
    op.add_column("flowledger_schedules", sa.Column("paused_at", sa.BigInteger(),
                                                    nullable=True))
    op.create_index("ix_flowledger_runs_forked_from", "flowledger_runs",
                    ["forked_from", "id"],
                    sqlite_where=sa.text("forked_from IS NOT NULL"),
                    postgresql_where=sa.text("forked_from IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_flowledger_runs_forked_from", "flowledger_runs")
    op.execute("ALTER TABLE flowledger_schedules DROP COLUMN paused_at")
    op.execute("ALTER TABLE flowledger_schedules DROP COLUMN timezone")
