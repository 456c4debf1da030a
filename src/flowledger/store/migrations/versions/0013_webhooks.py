"""Webhooks: per-owner subscriptions, the durable outbox of their deliveries, and every
delivery attempt.

The outbox rows are written by a trigger on the runs table, in the very transaction
that changes a run's status to ``completed``, ``failed``, ``cancelled`` or ``paused``:
whichever statement does it (a finish, a cancel, a pause, a lost worker's run failed by a
claim), a process that dies right after cannot lose the event, and no writer can forget
it. The trigger fires only on a change of ``status`` to one of those (its WHEN clause),
so step writes, heartbeats and lease renewals never pay for it; a run end with no
subscription costs one probe of an index on the owner.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

STATUSES = "('completed', 'failed', 'cancelled', 'paused')"
# The columns the trigger fills; the id, payload and time are dialect-specific.
_COLUMNS = ("id, webhook_id, owner, event, run_id, payload, status, attempts, "
            "next_attempt_at, created_at")
# What a delivery says of its run, as it was when its status changed (the dispatcher
# turns ids and times into their public forms).
_FIELDS = ("'workflow', NEW.workflow, 'version', NEW.version, 'status', NEW.status, "
           "'queue', NEW.queue, 'parent_id', {parent}, 'created_at', NEW.created_at, "
           "'started_at', NEW.started_at, 'completed_at', NEW.completed_at, "
           "'paused_at', NEW.paused_at, 'pause_reason', NEW.pause_reason, "
           "'error', NEW.error")
_MATCHING = ("FROM flowledger_webhooks w WHERE w.owner = NEW.owner AND w.enabled = 1 "
             "AND w.events LIKE ('%\"run.' || NEW.status || '\"%')")

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION flowledger_webhook_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    at BIGINT := COALESCE(NEW.completed_at, NEW.paused_at,
                          (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT);
BEGIN
    INSERT INTO flowledger_webhook_deliveries ({_COLUMNS})
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), w.id, NEW.owner,
           'run.' || NEW.status, NEW.id,
           json_build_object({_FIELDS.format(parent="NEW.parent_id::text")})::text,
           'pending', 0, at, at
    {_MATCHING};
    RETURN NULL;
END $$;
"""

PG_TRIGGER = ("CREATE TRIGGER flowledger_runs_webhooks AFTER UPDATE OF status ON "
              "flowledger_runs FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status "
              f"AND NEW.status IN {STATUSES}) EXECUTE FUNCTION flowledger_webhook_outbox()")

_SQLITE_NOW = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
SQLITE_TRIGGER = f"""
CREATE TRIGGER flowledger_runs_webhooks AFTER UPDATE OF status ON flowledger_runs
WHEN NEW.status IS NOT OLD.status AND NEW.status IN {STATUSES}
BEGIN
    INSERT INTO flowledger_webhook_deliveries ({_COLUMNS})
    SELECT 'msg_' || lower(hex(randomblob(16))), w.id, NEW.owner, 'run.' || NEW.status,
           NEW.id, json_object({_FIELDS.format(parent="NEW.parent_id")}), 'pending', 0,
           COALESCE(NEW.completed_at, NEW.paused_at, {_SQLITE_NOW}),
           COALESCE(NEW.completed_at, NEW.paused_at, {_SQLITE_NOW})
    {_MATCHING};
END
"""


def upgrade() -> None:
    op.create_table(
        "flowledger_webhooks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_flowledger_webhooks_owner", "flowledger_webhooks", ["owner"])
    op.create_table(
        "flowledger_webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("webhook_id", sa.String(32),
                  sa.ForeignKey("flowledger_webhooks.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Uuid(),
                  sa.ForeignKey("flowledger_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(300), nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("redelivered_at", sa.BigInteger(), nullable=True),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
    )
    op.create_index("ix_flowledger_webhook_deliveries_due", "flowledger_webhook_deliveries",
                    ["next_attempt_at"],
                    sqlite_where=sa.text("status IN ('pending', 'delivering')"),
                    postgresql_where=sa.text("status IN ('pending', 'delivering')"))
    op.create_index("ix_flowledger_webhook_deliveries_webhook",
                    "flowledger_webhook_deliveries", ["webhook_id", "created_at"])
    op.create_index("ix_flowledger_webhook_deliveries_owner",
                    "flowledger_webhook_deliveries", ["owner", "created_at"])
    op.create_index("ix_flowledger_webhook_deliveries_run",
                    "flowledger_webhook_deliveries", ["run_id"])
    op.create_table(
        "flowledger_webhook_attempts",
        sa.Column("delivery_id", sa.String(40),
                  sa.ForeignKey("flowledger_webhook_deliveries.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("response", sa.String(256), nullable=True),
    )
    # No batch mode anywhere near flowledger_runs: on SQLite it would rebuild the table
    # without its revision triggers (0009).
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS flowledger_runs_webhooks ON flowledger_runs")
        op.execute("DROP FUNCTION IF EXISTS flowledger_webhook_outbox()")
    else:
        op.execute("DROP TRIGGER IF EXISTS flowledger_runs_webhooks")
    op.drop_table("flowledger_webhook_attempts")
    for index in ("due", "webhook", "owner", "run"):
        op.drop_index(f"ix_flowledger_webhook_deliveries_{index}",
                      table_name="flowledger_webhook_deliveries")
    op.drop_table("flowledger_webhook_deliveries")
    op.drop_index("ix_flowledger_webhooks_owner", table_name="flowledger_webhooks")
    op.drop_table("flowledger_webhooks")
