"""Tables and indexes. Migrations under ``migrations/`` create exactly this schema.

Timestamps are integer microseconds since the epoch (UTC): compact, fast to bind on
every backend, and exact. Payloads (inputs, outputs, errors) are serialized text so
the stored form is the same on SQLite and PostgreSQL and a pluggable serializer can
own it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    text,
)

metadata = MetaData()

runs = Table(
    "flowledger_runs",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("entrypoint", String(1000), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("serializer", String(50), nullable=False),
    Column("inputs", Text, nullable=True),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("deadline_at", BigInteger, nullable=True),
    Column("total_steps", Integer, nullable=False, server_default="0"),
    Column("completed_steps", Integer, nullable=False, server_default="0"),
    Column("failed_steps", Integer, nullable=False, server_default="0"),
    Column("skipped_steps", Integer, nullable=False, server_default="0"),
    Column("recovery_attempts", Integer, nullable=False, server_default="0"),
    Column("parent_id", Uuid(), nullable=True),
    Column("forked_from", Uuid(), nullable=True),
    Column("forked_from_position", Integer, nullable=True),
    Column("resumed_at", BigInteger, nullable=True),
    Column("resumed_from_position", Integer, nullable=True),
    # Which process executes the run ("host:pid:process-start"), and the fencing token
    # every step write is checked against, so a superseded execution cannot write.
    Column("executor", String(300), nullable=True),
    Column("lease_token", String(32), nullable=True),
    # Queued runs (``Ledger.submit``): claimed by workers, highest priority then oldest,
    # not before ``scheduled_at``; a worker holds each claimed run until
    # ``lease_expires_at`` and renews it while alive.
    Column("queue", String(200), nullable=True),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("scheduled_at", BigInteger, nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("concurrency_key", String(200), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    # Bumped (by triggers, migration 0009) by every write to the run's row, attempts,
    # usage, context and artifacts; with its steps' counts and times it tells readers
    # "unchanged" cheaply (ETags, polling dashboards).
    Column("revision", BigInteger, nullable=False, server_default="0"),
    # A paused run: when, why and by whom (cleared when it is resumed).
    Column("paused_at", BigInteger, nullable=True),
    Column("pause_reason", String(500), nullable=True),
    Column("paused_by", String(200), nullable=True),
    # A waiting run (``fl.sleep``, ``fl.wait_for_event``) holds no worker: workers claim
    # it again at ``wake_at`` (a timer, or a wait's timeout), or when an event it waits
    # for (``waiting_for``) is sent.
    Column("wake_at", BigInteger, nullable=True),
    Column("waiting_for", String(200), nullable=True),
    # The W3C traceparent of the span this run's trace continues (a submitting request's,
    # or the calling step's for a child run); NULL: the run starts its own trace.
    Column("traceparent", String(55), nullable=True),
    # Listing filters keep the id order (newest first) inside each index, so a page is a
    # short index walk whatever the combination of status, workflow and owner.
    Index("ix_flowledger_runs_status", "status", "id"),
    Index("ix_flowledger_runs_workflow", "workflow", "status", "id"),
    Index("ix_flowledger_runs_owner", "owner", "status", "id"),
    Index("ix_flowledger_runs_workflow_id", "workflow", "id"),
    Index("ix_flowledger_runs_queue", "queue", "id", sqlite_where=text("queue IS NOT NULL"),
          postgresql_where=text("queue IS NOT NULL")),
    Index("ix_flowledger_runs_owner_id", "owner", "id"),
    Index("ix_flowledger_runs_forked_from", "forked_from", "id",
          sqlite_where=text("forked_from IS NOT NULL"),
          postgresql_where=text("forked_from IS NOT NULL")),
    # Partial: most runs have no parent, and a full index of NULLs looks useless to
    # SQLite's planner after ANALYZE (it would scan the table for child runs).
    Index("ix_flowledger_runs_parent", "parent_id",
          sqlite_where=text("parent_id IS NOT NULL"),
          postgresql_where=text("parent_id IS NOT NULL")),
    # Queue indexes are partial: runs started in-process (no queue) never pay for them.
    Index("ix_flowledger_runs_claim", "queue", "priority", "id",
          sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    Index("ix_flowledger_runs_lease", "queue", "lease_expires_at",
          sqlite_where=text("status = 'running' AND queue IS NOT NULL"),
          postgresql_where=text("status = 'running' AND queue IS NOT NULL")),
    Index("ix_flowledger_runs_key", "queue", "concurrency_key",
          sqlite_where=text("status = 'running' AND concurrency_key IS NOT NULL"),
          postgresql_where=text("status = 'running' AND concurrency_key IS NOT NULL")),
    Index("ix_flowledger_runs_queue_done", "completed_at", "queue",
          sqlite_where=text("queue IS NOT NULL"), postgresql_where=text("queue IS NOT NULL")),
    Index("ix_flowledger_runs_wake", "wake_at", sqlite_where=text("status = 'waiting'"),
          postgresql_where=text("status = 'waiting'")),
    Index("ix_flowledger_runs_idempotency", "owner", "idempotency_key", unique=True,
          sqlite_where=text("idempotency_key IS NOT NULL"),
          postgresql_where=text("idempotency_key IS NOT NULL")),
)

steps = Table(
    "flowledger_steps",
    metadata,
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("input", Text, nullable=True),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("child_run_id", Uuid(), nullable=True),
    # The context values this step set (JSON object of name -> serialized value), written
    # with its result: a fork rebuilds the context as it stood at the fork point from it.
    Column("context", Text, nullable=True),
    # Redaction changed the recorded output or context values: the step is executed
    # again on resume instead of replayed (docs/redaction.md).
    Column("redacted", Integer, nullable=False, server_default=text("0")),
    sqlite_with_rowid=False,
)

# Attempts of a step that did not end it successfully: failed (retried or final),
# interrupted (the run ended, or its process died, while the attempt ran). The step row
# itself describes its latest attempt, so the success path writes nothing here.
attempts = Table(
    "flowledger_attempts",
    metadata,
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # failed | interrupted
    Column("started_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    # When the next attempt was due (a retry after backoff); NULL when none followed.
    Column("retry_at", BigInteger, nullable=True),
    sqlite_with_rowid=False,
)

run_tags = Table(
    "flowledger_run_tags",
    metadata,
    Column("tag", String(200), primary_key=True),
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           primary_key=True),
    Index("ix_flowledger_run_tags_run", "run_id"),
    sqlite_with_rowid=False,
)

usage = Table(
    "flowledger_usage",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           nullable=False),
    Column("position", Integer, nullable=False),
    Column("model", String(200), nullable=False),
    Column("provider", String(100), nullable=True),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    # NULL when the pricing library does not know the model: tokens are still counted.
    Column("cost_usd", Float, nullable=True),
    Column("prices_version", String(50), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    # 1: the answer came from the LLM response cache (no tokens spent, zero cost).
    Column("cache_hit", Integer, nullable=False, server_default=text("0")),
    Index("ix_flowledger_usage_run", "run_id", "position"),
    Index("ix_flowledger_usage_recorded", "recorded_at"),
)

context = Table(
    "flowledger_context",
    metadata,
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=True),
    # The step that set it (0: the workflow body), for inspection.
    Column("position", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

artifacts = Table(
    "flowledger_artifacts",
    metadata,
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           primary_key=True),
    Column("key", String(512), primary_key=True),
    # Content lives in the artifact store at <owner namespace>/<digest>: identical content
    # of one owner is stored once, and never shared across owners.
    Column("owner", String(200), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_flowledger_artifacts_digest", "owner", "digest"),
    sqlite_with_rowid=False,
)


# What one step attempt logged (``logging``, and ``print`` when captured): a JSON array
# of records written with the attempt's outcome, bounded; ``dropped`` counts the records
# left out past the bound.
step_logs = Table(
    "flowledger_step_logs",
    metadata,
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("records", Text, nullable=False),
    Column("dropped", Integer, nullable=False, server_default="0"),
    Column("written_at", BigInteger, nullable=False),
)

# Events sent to runs (``Ledger.send_event``): kept until a ``wait_for_event`` of that
# name consumes them, oldest first, each by exactly one wait (its step position).
run_events = Table(
    "flowledger_run_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           nullable=False),
    Column("name", String(200), nullable=False),
    Column("payload", Text, nullable=True),
    Column("sent_at", BigInteger, nullable=False),
    Column("consumed_position", Integer, nullable=True),
    Column("consumed_at", BigInteger, nullable=True),
    # Why the wait refused it (its payload did not fit the wait's model): never delivered.
    Column("error", Text, nullable=True),
    Index("ix_flowledger_run_events_run", "run_id", "name", "id"),
)


queues = Table(
    "flowledger_queues",
    metadata,
    # Limits every worker enforces together (NULL: unlimited).
    Column("name", String(200), primary_key=True),
    Column("concurrency", Integer, nullable=True),
    Column("key_concurrency", Integer, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    # Claim rates (units per period_us; NULL: none): the queue's, and each key's (0015).
    Column("rate_units", BigInteger, nullable=True),
    Column("rate_period_us", BigInteger, nullable=True),
    Column("key_rate_units", BigInteger, nullable=True),
    Column("key_rate_period_us", BigInteger, nullable=True),
)

# GCRA buckets (0015): a named limit steps use (scope 'limit', key ''), a queue's claim
# rate (scope 'queue', name the queue, key ''), and one per concurrency key of a queue
# with a key rate (scope 'key'). ``tat`` is the theoretical arrival time in microseconds
# of the database's clock; units per period_us, ``burst`` units may start at once.
rate_limits = Table(
    "flowledger_rate_limits",
    metadata,
    Column("scope", String(8), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("period_us", BigInteger, nullable=False),
    Column("burst", BigInteger, nullable=False),
    Column("tat", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Paused queues: workers claim none of their runs (runs already executing carry on).
queue_pauses = Table(
    "flowledger_queue_pauses",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("paused_at", BigInteger, nullable=False),
    Column("reason", String(500), nullable=True),
)

workers = Table(
    "flowledger_workers",
    metadata,
    Column("id", String(300), primary_key=True),  # the executor identity host:pid:start
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", Text, nullable=False),  # JSON list
    Column("concurrency", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # running | stopping
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
    # The lease it takes on runs: a heartbeat older than this means the worker is lost.
    Column("lease_us", BigInteger, nullable=True),
)

schedules = Table(
    "flowledger_schedules",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("workflow", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("entrypoint", String(1000), nullable=False),
    Column("serializer", String(50), nullable=False),
    Column("inputs", Text, nullable=True),
    Column("cron", String(200), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("priority", Integer, nullable=False),
    # 1: fire every tick missed while no worker ran; 0: only the latest one.
    Column("catch_up", Integer, nullable=False),
    Column("next_fire_at", BigInteger, nullable=False),
    Column("last_fired_at", BigInteger, nullable=True),
    Column("last_run_id", Uuid(), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # The IANA time zone the expression is read in (NULL: UTC), migration 0016.
    Column("timezone", String(64), nullable=True),
    # Set while the schedule is paused: workers fire none of its ticks.
    Column("paused_at", BigInteger, nullable=True),
    Index("ix_flowledger_schedules_next", "next_fire_at"),
)


api_tokens = Table(
    "flowledger_api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # public part, shown by ``tokens ls``
    # SHA-256 of the whole secret token: tokens are 256-bit random, so a fast hash is
    # enough, and the secret itself is never stored.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("admin", Integer, nullable=False),
    Column("note", String(200), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)


# Workflow spec texts by content digest, per owner: every run of a spec names its digest
# (its entrypoint is ``spec:<digest>``), so a resume anywhere reads the exact text it was
# recorded with. ``registered_at`` marks the texts an owner registered by name.
specs = Table(
    "flowledger_specs",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("registered_at", BigInteger, nullable=True),
    Index("ix_flowledger_specs_name", "owner", "name", "registered_at"),
)


# Recorded LLM responses by the canonical hash of their request, per owner.
llm_cache = Table(
    "flowledger_llm_cache",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


# Webhook subscriptions, per owner: ``events`` is a JSON list of event names; the secret
# signs deliveries (Standard Webhooks), so it is kept as given.
webhooks = Table(
    "flowledger_webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", String(100), nullable=False),
    Column("enabled", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_flowledger_webhooks_owner", "owner"),
)

# The durable outbox: a trigger on the runs table (migration 0013) inserts one row per
# matching enabled subscription in the transaction that changes a run's status, so a
# process that dies right after a run ends still delivers. ``payload`` is the run as it
# was then (JSON). Dispatchers claim due rows (``next_attempt_at``; a claimed row's
# ``next_attempt_at`` is when its claim expires), and the id is the ``webhook-id``.
webhook_deliveries = Table(
    "flowledger_webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("webhook_id", String(32),
           ForeignKey("flowledger_webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("event", String(32), nullable=False),
    Column("run_id", Uuid(), ForeignKey("flowledger_runs.id", ondelete="CASCADE"),
           nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending|delivering|delivered|failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("claimed_by", String(300), nullable=True),
    Column("claim_token", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # A redelivery by hand starts a new retry window.
    Column("redelivered_at", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Index("ix_flowledger_webhook_deliveries_due", "next_attempt_at",
          sqlite_where=text("status IN ('pending', 'delivering')"),
          postgresql_where=text("status IN ('pending', 'delivering')")),
    Index("ix_flowledger_webhook_deliveries_webhook", "webhook_id", "created_at"),
    Index("ix_flowledger_webhook_deliveries_owner", "owner", "created_at"),
    Index("ix_flowledger_webhook_deliveries_run", "run_id"),
)

# Every attempt of a delivery: its answer's status code, latency, error and the start of
# its body (never more than 256 characters).
webhook_attempts = Table(
    "flowledger_webhook_attempts",
    metadata,
    Column("delivery_id", String(40),
           ForeignKey("flowledger_webhook_deliveries.id", ondelete="CASCADE"),
           primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("response", String(256), nullable=True),
)


# Retention policies (0017): finished run trees matching (workflow, owner, statuses) are
# archived (optionally) and deleted ``keep_us`` after they completed. The id is derived
# from the selector, so setting a policy for the same selector replaces it. ``statuses``
# is a comma-separated list of final statuses.
retention_policies = Table(
    "flowledger_retention_policies",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workflow", String(200), nullable=True),
    Column("owner", String(200), nullable=True),
    Column("statuses", String(100), nullable=False),
    Column("keep_us", BigInteger, nullable=False),
    Column("archive", String(2000), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Leases one process at a time holds for a duty (``retention``: applying the policies):
# ``token`` identifies the holding, ``fence`` grows with every new holding, and writes
# the duty makes check in their own transaction that the token still holds the lease.
leases = Table(
    "flowledger_leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(300), nullable=False),
    Column("token", String(32), nullable=False),
    Column("fence", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("acquired_at", BigInteger, nullable=False),
)

# Per-owner data keys (encryption at rest with ``Keyring(per_owner=True)``): an owner's
# payloads are sealed with a key derived from the master key and ``secret``; a shred
# erases the secret (``shredded_at``), and with it every payload sealed under it. An
# owner may hold several live keys (two processes creating one at once): each
# ciphertext names its own.
owner_keys = Table(
    "flowledger_owner_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("secret", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("shredded_at", BigInteger, nullable=True),
    Index("ix_flowledger_owner_keys_owner", "owner", "created_at"),
)
