"""Queues, workers and schedules: queue columns on runs, their partial indexes, and the
queue-limit, worker and schedule tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _partial(predicate: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: no table rewrite, however many runs exist.
    for column in (sa.Column("queue", sa.String(200), nullable=True),
                   sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
                   sa.Column("scheduled_at", sa.BigInteger(), nullable=True),
                   sa.Column("idempotency_key", sa.String(200), nullable=True),
                   sa.Column("concurrency_key", sa.String(200), nullable=True),
                   sa.Column("lease_expires_at", sa.BigInteger(), nullable=True)):
        op.add_column("flowledger_runs", column)
    op.create_index("ix_flowledger_runs_claim", "flowledger_runs",
                    ["queue", "priority", "id"], **_partial("status = 'pending'"))
    op.create_index("ix_flowledger_runs_lease", "flowledger_runs",
                    ["queue", "lease_expires_at"],
                    **_partial("status = 'running' AND queue IS NOT NULL"))
    op.create_index("ix_flowledger_runs_key", "flowledger_runs",
                    ["queue", "concurrency_key"],
                    **_partial("status = 'running' AND concurrency_key IS NOT NULL"))
    op.create_index("ix_flowledger_runs_queue_done", "flowledger_runs",
                    ["completed_at", "queue"], **_partial("queue IS NOT NULL"))
    op.create_index("ix_flowledger_runs_idempotency", "flowledger_runs",
                    ["owner", "idempotency_key"], unique=True,
                    **_partial("idempotency_key IS NOT NULL"))
    op.create_table(
        "flowledger_queues",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("key_concurrency", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "flowledger_workers",
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.Text(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "flowledger_schedules",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("entrypoint", sa.String(1000), nullable=False),
        sa.Column("serializer", sa.String(50), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=True),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("catch_up", sa.Integer(), nullable=False),
        sa.Column("next_fire_at", sa.BigInteger(), nullable=False),
        sa.Column("last_fired_at", sa.BigInteger(), nullable=True),
        sa.Column("last_run_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_flowledger_schedules_next", "flowledger_schedules", ["next_fire_at"])


def downgrade() -> None:
    op.drop_table("flowledger_schedules")
    op.drop_table("flowledger_workers")
    op.drop_table("flowledger_queues")
    for name in ("idempotency", "queue_done", "key", "lease", "claim"):
        op.drop_index(f"ix_flowledger_runs_{name}", table_name="flowledger_runs")
    with op.batch_alter_table("flowledger_runs") as batch:
        for column in ("lease_expires_at", "concurrency_key", "idempotency_key",
                       "scheduled_at", "priority", "queue"):
            batch.drop_column(column)
