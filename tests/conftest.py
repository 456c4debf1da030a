"""Backends for the test session: a SQLite file per test and a fresh PostgreSQL database.

PostgreSQL is required: when it cannot be reached the session fails (it never skips).
Point FLOWLEDGER_TEST_POSTGRES at another server's maintenance database if needed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

import flowledger as fl

# The CLI sizes its tables from COLUMNS when set (pytest-xdist's workers set it to 80):
# tests read the width a script would get, whatever terminal started them.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

ADMIN_URL = os.environ.get("FLOWLEDGER_TEST_POSTGRES",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _admin_conninfo(database: str | None = None) -> str:
    url = make_url(ADMIN_URL)
    return url.set(drivername="postgresql", database=database or url.database).render_as_string(
        hide_password=False)


def create_pg_database(prefix: str = "flowledger_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the test suite and is unreachable at "
                    f"{ADMIN_URL}: {exc}", pytrace=False)
    return name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url(name: str) -> str:
    return make_url(_admin_conninfo(name)).render_as_string(hide_password=False)


def needs_postgres(item: pytest.Item) -> bool:
    """Whether a collected test talks to PostgreSQL: it uses the ``pg_database`` fixture
    (directly or through ``db_url``) or is parametrized with the postgresql backend."""
    if "pg_database" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(
        isinstance(value, str) and value == "postgresql" for value in callspec.params.values())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop at once, with one clear line, when PostgreSQL is unreachable and a collected
    test needs it (so ``pytest tests/unit`` runs without a server; the whole suite never
    skips for want of one)."""
    if not any(needs_postgres(item) for item in session.items):
        return
    try:
        psycopg.connect(_admin_conninfo(), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        pytest.exit(f"PostgreSQL is required for the test suite and is unreachable at "
                    f"{ADMIN_URL} ({reason}); start it or set FLOWLEDGER_TEST_POSTGRES",
                    returncode=1)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = create_pg_database()
    yield pg_url(name)
    drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    url: str = request.getfixturevalue("pg_database")
    fl.Ledger(url).close()  # make sure the schema exists before emptying it
    with psycopg.connect(make_url(url).render_as_string(hide_password=False),
                         autocommit=True) as conn:
        conn.execute("TRUNCATE flowledger_runs, flowledger_queues, flowledger_workers, "
                     "flowledger_schedules, flowledger_api_tokens, flowledger_specs, "
                     "flowledger_llm_cache, flowledger_webhooks, flowledger_queue_pauses, "
                     "flowledger_rate_limits, flowledger_retention_policies, "
                     "flowledger_leases, flowledger_owner_keys CASCADE")
    yield url


@pytest.fixture
def ledger(db_url: str) -> Iterator[fl.Ledger]:
    with fl.Ledger(db_url) as opened:
        yield opened
