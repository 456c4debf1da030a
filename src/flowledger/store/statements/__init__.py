"""Every SQL statement the store runs, one module per concern: open the one you need.

- ``steps.py``: the step hot path (begin, finish, failed attempts, usage, context,
  fenced artifact saves) as text SQL written once for both dialects, run on raw driver
  connections; its idempotent forms for replaying a spool.
- ``runs.py``: creating runs and their tags, finishing, cancelling, taking them over.
- ``history.py``: attempts interrupted by takeovers or run ends, the attempt history,
  copying steps, attempts, artifacts and context into a fork.
- ``artifacts.py``, ``context.py``: artifact references; context reads.
- ``reads.py``: reads of recorded runs, run filters, lists, families, usage totals and
  statistics; ``progress.py``: the light reads event streams poll.
- ``queues.py``: submitting, claiming, leases, releasing, requeueing, queue limits and
  figures; ``workers.py``, ``schedules.py``.
- ``api_tokens.py``: API tokens.
- ``webhooks.py``: webhook subscriptions, claiming due deliveries from the outbox,
  recording attempts (the outbox rows are inserted by a trigger, migration 0013).
- ``metrics.py``: the aggregates Prometheus metrics are derived from (histograms counted
  by the database).
- ``bulk.py``: loading archives (COPY on PostgreSQL) and deleting runs.
- ``retention.py``: retention policies, the leases of duties (taken, renewed, checked by
  fenced deletes), whole runs read for archives and written back by restores.
- ``common.py``: pieces shared by several modules (literals, ``= ANY(array)`` id lists).

Statements that take no arguments are module-level constants, built once: constructing
SQLAlchemy expressions per call cost more than a commit on the step hot path. Statements
that depend on arguments (filters, owners, prefixes, id lists) are functions that build
a fresh one; the store modules only execute what these return.

SQL outside this package: the tables in ``../schema.py``; the dialect hooks in
``../dialects.py`` (SQLite pragmas and ``BEGIN IMMEDIATE``, the insert that skips
duplicates, PostgreSQL ``pg_notify``/``LISTEN``, the migration lock, reading the commit
modes); ``../migrate.py`` (reading the schema version) and the Alembic scripts under
``../migrations/``.
"""
