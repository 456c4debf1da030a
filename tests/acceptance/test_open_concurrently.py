"""Several processes opening a brand-new store at once all succeed (migrations are locked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.helpers.procs import Child

PROCESSES = 4


def _open_at_once(url: str) -> None:
    children = [Child("open", url) for _ in range(PROCESSES)]
    for child in children:
        child.expect("ready")
    for child in children:  # all are waiting: release them together
        child.send("go")
    for child in children:
        code, err = child.finish()
        assert code == 0, err
        assert "result 14" in child.lines


def _check_schema(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert {"flowledger_runs", "flowledger_steps", "flowledger_run_tags",
                "flowledger_alembic_version"} <= tables
        assert conn.execute(text("SELECT count(*) FROM flowledger_runs")).scalar() == PROCESSES
        assert conn.execute(text("SELECT count(*) FROM flowledger_alembic_version")).scalar() == 1
    engine.dispose()


def test_new_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'new.db'}"
    _open_at_once(url)
    _check_schema(url)


@pytest.mark.postgres_only
def test_new_postgres_database() -> None:
    name = create_pg_database("flowledger_open")
    try:
        _open_at_once(pg_url(name))
        _check_schema(pg_url(name))
    finally:
        drop_pg_database(name)
