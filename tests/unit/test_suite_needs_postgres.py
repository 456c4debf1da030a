"""The suite's PostgreSQL rule: unit tests run without a server; any selection with a
PostgreSQL test fails (never skips) when the server is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "postgresql://postgres@127.0.0.1:9/postgres"  # port 9 (discard): nothing listens


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWLEDGER_TEST_POSTGRES": NOWHERE}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_unit_tests_run_without_postgresql() -> None:
    result = _pytest("tests/unit/test_migration_head.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_a_postgresql_test_fails_the_session_when_the_server_is_unreachable() -> None:
    result = _pytest("tests/contract/test_migrations.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PostgreSQL is required for the test suite and is unreachable" in (
        result.stdout + result.stderr)
    assert "passed" not in result.stdout and "skipped" not in result.stdout
