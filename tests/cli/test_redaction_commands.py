"""`flowledger inspect` shows which steps were redacted at record time; the CLI's own
Ledger honours FLOWLEDGER_REDACT (what `flowledger run` records is redacted)."""

from __future__ import annotations

import pytest

import flowledger as fl
from tests.cli.conftest import CLI


@fl.step()
def credentials(user: str) -> dict[str, str]:
    return {"user": user, "api_key": "CLI-SECRET-KEY"}


@fl.workflow(name="cli-redaction")
def with_credentials(user: str) -> int:
    return len(credentials(user)["api_key"])


def test_inspect_marks_redacted_steps(cli: CLI, db_url: str) -> None:
    with fl.Ledger(db_url, redact=["api_key"]) as ledger:
        assert ledger.run(with_credentials, "ana") == len("CLI-SECRET-KEY")
        run_id = ledger.runs(workflow="cli-redaction").runs[0].id
    shown = cli("inspect", run_id)
    assert shown.code == 0, shown.err
    row = next(line for line in shown.out.splitlines() if " credentials " in line)
    assert "completed (redacted)" in row
    data = cli("inspect", run_id, "--json").json()
    assert data["steps"][0]["redacted"] is True
    assert data["steps"][0]["output"] == {"user": "ana", "api_key": "[redacted]"}


def test_cli_run_honours_the_environment(cli: CLI, db_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_REDACT", "api_key")
    done = cli("run", "tests.cli.test_redaction_commands:with_credentials", "--input",
               "user=bo")
    assert done.code == 0, done.err
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(ledger.runs(workflow="cli-redaction").runs[0].id)
    assert run.steps[0].output == {"user": "bo", "api_key": "[redacted]"}
