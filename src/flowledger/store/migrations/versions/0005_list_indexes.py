"""Indexes for owner-only and workflow-only listings; a partial parent index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOT_NULL = sa.text("parent_id IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_flowledger_runs_workflow_id", "flowledger_runs", ["workflow", "id"])
    op.create_index("ix_flowledger_runs_owner_id", "flowledger_runs", ["owner", "id"])
    op.drop_index("ix_flowledger_runs_parent", table_name="flowledger_runs")
    op.create_index("ix_flowledger_runs_parent", "flowledger_runs", ["parent_id"],
                    sqlite_where=NOT_NULL, postgresql_where=NOT_NULL)


def downgrade() -> None:
    op.drop_index("ix_flowledger_runs_parent", table_name="flowledger_runs")
    op.create_index("ix_flowledger_runs_parent", "flowledger_runs", ["parent_id"])
    op.drop_index("ix_flowledger_runs_owner_id", table_name="flowledger_runs")
    op.drop_index("ix_flowledger_runs_workflow_id", table_name="flowledger_runs")
