"""Redaction at record time (docs/redaction.md), on SQLite and PostgreSQL: marker secrets
in every kind of recorded value never reach the store (every text column of every table
is scanned through a raw connection, and the SQLite files' bytes), while the run itself
works with the real values; the policy on replay, fork and submit; the HTTP API and the
UI still show the records, with the marker."""

from __future__ import annotations

import contextlib
import logging
import re
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import String, Text, create_engine, select

import flowledger as fl
from flowledger.http import create_app
from flowledger.store.schema import metadata
from flowledger.ui import LocalAccess, create_ui

log = logging.getLogger("tests.redaction")

# Each place a value is recorded gets its own secret, so a leak names the place.
SECRETS = {
    "run input": "S01-run-input",
    "step input": "S02-step-input",
    "step input in a list": "S03-list-item",
    "dataclass output": "S04-dataclass",
    "pydantic output": "S05-pydantic",
    "run output": "S06-run-output",
    "context in the body": "S07-body-context",
    "context in a step": "S08-step-context",
    "error message": "S09-error-message",
    "retried error": "S10-retried",
    "event payload": "S11-event",
    "log message": "S12-log-line",
    "logged traceback": "S13-logged-exc",
    "bearer token": "S14bearertokenvalue",
    "child input": "S15-child-input",
    "run error": "S16-run-error",
    "spec input": "S17-spec-input",
    "card in output": "4111 1111 1111 1111",
    "card in a log line": "5500-0000-0000-0004",
}
NOT_A_CARD = "1234 5678 9012 3456"  # 16 digits, Luhn checksum fails: kept
KEYS: list[str | re.Pattern[str]] = ["password", "API_KEY", re.compile(r"secret_.*")]
REDACT = fl.Redact(keys=KEYS, values=[fl.redact.BEARER_TOKEN, fl.redact.CARD_NUMBER])


@dataclass
class Account:
    user: str
    password: str


class Session(BaseModel):
    user: str
    secret_token: str


@fl.step()
def login(creds: dict[str, Any], items: list[dict[str, str]]) -> Account:
    assert creds["password"] == SECRETS["step input"]  # the step sees the real values
    fl.context.set("cfg", {"nested": [{"password": SECRETS["context in a step"]}]})
    log.warning("logging in with password=%s, header Authorization: Bearer %s, card %s",
                SECRETS["log message"], SECRETS["bearer token"], SECRETS["card in a log line"])
    try:
        raise KeyError(f"api_key={SECRETS['logged traceback']}")
    except KeyError:
        log.exception("lookup failed")
    return Account("ana", SECRETS["dataclass output"])


@fl.step()
def session(account: Account) -> Session:
    assert account.password == SECRETS["dataclass output"]
    return Session(user=account.user, secret_token=SECRETS["pydantic output"])


@fl.step()
def refuse(password: str) -> None:
    raise PermissionError(f"login refused: password={password!r}")


attempts: list[int] = []


@fl.step(retries=1, backoff=0.001)
def flaky() -> str:
    attempts.append(1)
    if len(attempts) == 1:
        raise ConnectionError(f'upstream said {{"api_key": "{SECRETS["retried error"]}"}}')
    return f"card {SECRETS['card in output']} and order {NOT_A_CARD}"


@fl.workflow(name="redaction_child")
def child_flow(password: str) -> int:
    return len(password)


@fl.workflow(name="redaction_all")
def everything(config: dict[str, Any]) -> dict[str, Any]:
    assert config["password"] == SECRETS["run input"]  # the run works with the real values
    fl.context.set("api_key", SECRETS["context in the body"])
    account = login({"user": "ana", "password": SECRETS["step input"]},
                    [{"api_key": SECRETS["step input in a list"]}])
    made = session(account)
    with contextlib.suppress(PermissionError):
        refuse(SECRETS["error message"])
    notes = flaky()
    assert SECRETS["card in output"] in notes
    approval = fl.wait_for_event("approve")
    assert approval["password"] == "[redacted]"  # what the store holds reaches the run
    return {"password": SECRETS["run output"], "session": made.secret_token == SECRETS[
        "pydantic output"], "child": child_flow(SECRETS["child input"]), "notes": notes}


@fl.workflow(name="redaction_fails")
def fails() -> None:
    raise RuntimeError(f"giving up with Authorization: Bearer {SECRETS['run error']}")


SPEC = textwrap.dedent("""
    flowledger: 1
    name: redaction_spec
    inputs: {api_key: {type: string}}
    steps:
      - id: keep
        set: {password: "{{ inputs.api_key }}"}
    output: {api_key: "{{ context.password }}"}
    """)


def _text_columns() -> list[tuple[str, list[str]]]:
    return [(table.name, [c.name for c in table.columns if isinstance(c.type, String | Text)])
            for table in metadata.sorted_tables]


def stored_text(db_url: str) -> str:
    """Every text value of every table, read through a raw connection."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    found: list[str] = []
    try:
        with engine.connect() as conn:
            for name, columns in _text_columns():
                if not columns:
                    continue
                table = metadata.tables[name]
                for row in conn.execute(select(*[table.c[c] for c in columns])):
                    found.extend(str(value) for value in row if value is not None)
    finally:
        engine.dispose()
    return "\n".join(found)


def database_bytes(db_url: str) -> bytes:
    if not db_url.startswith("sqlite"):
        return b""
    path = Path(db_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def run_everything(db_url: str) -> str:
    attempts.clear()
    with fl.Ledger(db_url, redact=REDACT, capture_print=False) as ledger:
        handle = ledger.start(everything, {"user": "ana", "password": SECRETS["run input"]})
        deadline = threading.Event()
        for _ in range(3000):  # poll until the run waits for its event
            run = ledger.get(handle.id)
            if any(s.name.endswith("approve") and s.status is fl.StepStatus.RUNNING
                   for s in run.steps):
                break
            deadline.wait(0.01)
        else:
            raise AssertionError(f"the run never reached its wait: {ledger.get(handle.id)}")
        sent = ledger.send_event(handle.id, "approve", {"ok": True,
                                                        "password": SECRETS["event payload"]})
        assert sent.payload == {"ok": True, "password": "[redacted]"}
        output = handle.result()
        # In this process the run's own output is the real value.
        assert output["password"] == SECRETS["run output"] and output["session"]
        assert output["child"] == len(SECRETS["child input"])
        with pytest.raises(fl.RunFailed):
            ledger.run(fails)
        assert ledger.run(fl.parse_spec(SPEC, "s.yaml"), api_key=SECRETS["spec input"]) == {
            "api_key": SECRETS["spec input"]}
        return handle.id


def test_no_secret_reaches_the_store(db_url: str) -> None:
    run_id = run_everything(db_url)
    text = stored_text(db_url)
    leaked = {place: secret for place, secret in SECRETS.items() if secret in text}
    assert leaked == {}
    raw = database_bytes(db_url)
    assert {place for place, secret in SECRETS.items() if secret.encode() in raw} == set()
    assert "[redacted]" in text and NOT_A_CARD in text  # the scan sees what was recorded
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        assert run.inputs == {"config": {"user": "ana", "password": "[redacted]"}}
        assert run.output["password"] == "[redacted]"
        assert run.output["notes"] == f"card [redacted] and order {NOT_A_CARD}"
        assert run.context == {"api_key": "[redacted]",
                               "cfg": {"nested": [{"password": "[redacted]"}]}}
        steps = {s.name: s for s in run.steps}
        assert steps["login"].input == {"creds": {"user": "ana", "password": "[redacted]"},
                                        "items": [{"api_key": "[redacted]"}]}
        assert steps["login"].output == {"user": "ana", "password": "[redacted]"}
        assert steps["session"].output == {"user": "ana", "secret_token": "[redacted]"}
        # Redacted outputs and context are not replayable; the rest is.
        assert {name for name, s in steps.items() if s.redacted} == {
            "login", "session", "flaky"}
        refused = steps["refuse"].error
        assert refused is not None and "password='[redacted]'" in refused.message
        assert SECRETS["error message"] not in refused.traceback
        first = steps["flaky"].attempt_history[0].error
        assert first is not None and '"api_key": "[redacted]"' in first.message
        records = [r for attempt in ledger.logs(run_id, step=steps["login"].position)
                   for r in attempt.records]
        messages = "\n".join(f"{r.message}\n{r.exception or ''}" for r in records)
        assert "password=[redacted]" in messages and "Bearer [redacted]" in messages
        assert "card [redacted]" in messages and "api_key=[redacted]" in messages
        failed = ledger.get(ledger.runs(workflow="redaction_fails").runs[0].id)
        assert failed.error is not None
        assert failed.error.message == "giving up with Authorization: Bearer [redacted]"
        assert ledger.sent_events(run_id)[0].payload["password"] == "[redacted]"


def test_a_redacted_step_runs_again_on_replay_unredacted_ones_replay(ledger: fl.Ledger,
                                                                      db_url: str) -> None:
    calls: list[str] = []

    @fl.step()
    def token() -> dict[str, str]:
        calls.append("token")
        return {"api_key": "K-1"}

    @fl.step()
    def remember() -> int:
        calls.append("remember")
        fl.context.set("password", "P-1")
        return 1

    @fl.step()
    def plain() -> int:
        calls.append("plain")
        return 2

    @fl.step()
    def stop(key: str) -> str:
        calls.append("stop")
        if len(calls) <= 4:
            raise ValueError("not yet")
        return key

    @fl.workflow(name="redaction_replay")
    def flow() -> str:
        key = token()["api_key"]
        remember()
        plain()
        assert fl.context.get("password") == "P-1"  # the real value, set again
        return stop(key)

    with fl.Ledger(db_url, redact=["api_key", "password"]) as redacting:
        with pytest.raises(fl.RunFailed):
            redacting.run(flow)
        run_id = redacting.runs(workflow="redaction_replay").runs[0].id
        assert [s.redacted for s in redacting.get(run_id).steps] == [True, True, False, False]
        assert redacting.resume(run_id).result() == "K-1"
    assert calls == ["token", "remember", "plain", "stop", "token", "remember", "stop"]
    run = ledger.get(run_id)
    assert [s.attempts for s in run.steps] == [2, 2, 1, 2]
    assert run.steps[0].to_dict()["redacted"] is True


def test_run_inputs_resume_refused_submit_refused_fork_needs_them(ledger: fl.Ledger,
                                                                   db_url: str) -> None:
    @fl.step()
    def check(password: str) -> int:
        if password == "bad":
            raise ValueError("bad password")
        return len(password)

    @fl.workflow(name="redaction_inputs")
    def flow(password: str, n: int) -> int:
        return check(password) + n

    with fl.Ledger(db_url, redact=["password"]) as redacting:
        with pytest.raises(fl.RunFailed):
            redacting.run(flow, "bad", 1)  # the in-process run used the real value
        run_id = redacting.runs(workflow="redaction_inputs").runs[0].id
        with pytest.raises(fl.RedactedInputs, match=r"inputs password .*by reference") as e:
            redacting.resume(run_id)
        assert e.value.fields == ("password",)
        assert redacting.get(run_id).status is fl.RunStatus.FAILED  # untouched
        with pytest.raises(fl.RedactedInputs, match="pass secrets by reference"):
            redacting.submit(flow, "secret", 1, queue="redaction")
        with pytest.raises(fl.RedactedInputs, match="by reference"):
            redacting.add_schedule(flow, cron="@daily", inputs={"password": "x", "n": 1})
        with pytest.raises(fl.RedactedInputs, match="by reference"):
            redacting.resume(run_id, queue="redaction")  # a worker would run the record
        # A bulk resume leaves it as it is (and goes on with the others).
        bulk = redacting.resume_runs(workflow="redaction_inputs", to_queue="redaction")
        assert (bulk.count, bulk.skipped) == (0, (run_id,))
        with pytest.raises(fl.RedactedInputs):
            redacting.fork(run_id, 1)
        assert redacting.fork(run_id, 1, inputs={"password": "good"}).result() == 5
        with pytest.raises(fl.RedactedInputs):
            redacting.fork(run_id, 1, inputs={"password": "good"}, queue="redaction")
    # Nothing refused was recorded.
    assert [r.forked_from for r in ledger.runs(workflow="redaction_inputs").runs] == [
        run_id, None]


def test_environment_variable_applies_to_every_ledger(db_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    @fl.step()
    def creds() -> dict[str, Any]:
        return {"Token": "T-SECRET-ENV", "keep": "visible"}

    @fl.workflow(name="redaction_env")
    def flow() -> dict[str, Any]:
        return creds()

    monkeypatch.setenv("FLOWLEDGER_REDACT", " token ,unused")
    with fl.Ledger(db_url) as ledger:
        assert ledger.run(flow) == {"Token": "T-SECRET-ENV", "keep": "visible"}
        run = ledger.get(ledger.runs(workflow="redaction_env").runs[0].id)
        assert run.output == {"Token": "[redacted]", "keep": "visible"}
        assert run.steps[0].redacted
    assert "T-SECRET-ENV" not in stored_text(db_url)


def test_http_api_and_ui_show_redacted_records(db_url: str) -> None:
    @fl.step()
    def creds() -> dict[str, str]:
        return {"password": "H-SECRET", "user": "ana"}

    @fl.workflow(name="redaction_http")
    def flow() -> dict[str, str]:
        return creds()

    with fl.Ledger(db_url, redact=["password"]) as ledger:
        ledger.run(flow)
        run_id = ledger.runs(workflow="redaction_http").runs[0].id
        admin = ledger.create_token("ops", admin=True).secret
        settings_free = create_app(ledger)
        with TestClient(settings_free) as client:
            headers = {"Authorization": f"Bearer {admin}"}
            answer = client.get(f"/api/v1/runs/{run_id}", headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["steps"][0]["redacted"] is True
            assert body["steps"][0]["output"]["password"] == "[redacted]"
            one = client.get(f"/api/v1/runs/{run_id}/steps/1", headers=headers).json()
            assert one["redacted"] is True and one["output"]["user"] == "ana"
        with TestClient(create_ui(ledger, LocalAccess(ledger, "ui-login"))) as ui:
            assert ui.get("/login", params={"token": "ui-login"}).status_code == 200
            page = ui.get(f"/runs/{run_id}/steps/1")
            assert page.status_code == 200, page.text
            assert "[redacted]" in page.text and "H-SECRET" not in page.text
            assert 'data-testid="step-redacted"' in page.text
            assert "ana" in page.text
