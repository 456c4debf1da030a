"""Encryption at rest with real processes: a SIGKILLed run resumes from sealed records,
keys rotate while a worker runs, and a rotation killed mid-way goes on when run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import flowledger as fl
from tests.acceptance.test_crash import CHAIN_OUTPUT, _result
from tests.helpers import http_app
from tests.helpers import worker_app as app
from tests.helpers.procs import CHILD_PATH, ROOT, kill_in_flight, run_to_end
from tests.helpers.server import serving
from tests.helpers.workers import WorkerProcess, wait_until

KEY_A = fl.Keyring.generate("key-a")
KEY_B = fl.Keyring.generate("key-b")


def _stored_values(url: str, table: str, column: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [str(v) for v in conn.execute(sa.text(
                f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")).scalars()]
    finally:
        engine.dispose()


def _rotate_command(db_url: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=CHILD_PATH,
               FLOWLEDGER_ENCRYPTION_KEYS=f"{KEY_B},{KEY_A}")
    return subprocess.Popen(
        [sys.executable, "-m", "flowledger", "--db", db_url, "keys", "rotate", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_sigkilled_run_resumes_from_sealed_records(db_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", KEY_A)
    log = tmp_path / "log"
    run_id = kill_in_flight(db_url, "chain", "20", log, "9")
    outputs = _stored_values(db_url, "flowledger_steps", "output")
    assert len(outputs) == 8 and all(v.startswith("flenc1:key-a:") for v in outputs)
    code, lines, err = run_to_end("resume", db_url, run_id, log=log)
    assert code == 0, err
    assert _result(lines) == CHAIN_OUTPUT
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.COMPLETED and run.output == CHAIN_OUTPUT
        assert [s.output for s in run.steps] == [i * i for i in range(1, 21)]
    # Steps done before the kill ran once: their sealed outputs were replayed.
    assert [line for line in log.read_text().splitlines()
            if line == "work 3"] == ["work 3"]
    # Without the key a resume refuses, saying which key it needs; the run is untouched.
    monkeypatch.delenv("FLOWLEDGER_ENCRYPTION_KEYS")
    with fl.Ledger(db_url) as ledger, pytest.raises(fl.PayloadKeyMissing, match="key-a"):
        ledger.result(run_id)


def test_keys_rotate_while_a_worker_runs(db_url: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    old = fl.Keyring.parse(KEY_A)
    with fl.Ledger(db_url, encryption=old) as ledger:
        before = [ledger.run(app.five_steps, n) for n in range(20)]
        assert before == [n + 15 for n in range(20)]
        assert set(ledger.key_status().by_key) == {"key-a"}
    # Every process gets the new keyring (new primary first), then the rotation runs
    # while a worker is busy.
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", f"{KEY_B},{KEY_A}")
    with fl.Ledger(db_url) as ledger:
        handles = [ledger.submit(app.five_steps, n, 0.01, queue="rotq") for n in range(30)]
        worker = WorkerProcess(db_url, "--queue", "rotq", "--concurrency", "2")
        try:
            rotation = _rotate_command(db_url, "--batch", "7")
            out, err = rotation.communicate(timeout=300)
            assert rotation.returncode == 0, err
            assert "payloads now encrypted with key key-b" in out
            assert [h.result(timeout=120) for h in handles] == [n + 15 for n in range(30)]
        finally:
            code, output = worker.stop()
        assert code == 0, output
        status = ledger.key_status()
        assert set(status.by_key) == {"key-b"}, status.by_key
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", KEY_B)  # key A retired
    with fl.Ledger(db_url) as ledger:
        runs = ledger.runs(workflow="five_steps", limit=100).runs
        assert len(runs) == 50
        for summary in runs:
            run = ledger.get(summary.id)
            assert not isinstance(run.inputs, fl.SealedPayload)
            n = run.inputs["n"]
            assert run.output == n + 15
            assert [s.output for s in run.steps] == [n + 1, n + 3, n + 6, n + 10, n + 15]


def test_a_killed_rotation_goes_on_when_run_again(db_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(KEY_A)) as ledger:
        for n in range(120):
            ledger.run(app.one_step, n)
    rotation = _rotate_command(db_url, "--batch", "1")
    assert rotation.stderr is not None
    for line in rotation.stderr:  # the first batch is committed: kill it now
        if "re-encrypted" in line:
            break
    else:
        raise AssertionError(f"the rotation printed no progress: {rotation.wait()}")
    rotation.send_signal(signal.SIGKILL)
    assert rotation.wait(30) == -signal.SIGKILL
    both = fl.Keyring.parse(f"{KEY_B},{KEY_A}")
    with fl.Ledger(db_url, encryption=both) as ledger:
        halfway = ledger.key_status().by_key
        assert halfway.get("key-a", 0) > 0 and halfway.get("key-b", 0) > 0, halfway
        report = ledger.rotate_keys()
        assert report.total == halfway["key-a"]  # nothing done twice
        assert set(ledger.key_status().by_key) == {"key-b"}
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(KEY_B)) as ledger:
        assert sorted(ledger.result(s.id) for s in ledger.runs(limit=200).runs) == sorted(
            n + 1 for n in range(120))


def test_a_server_without_the_key_answers_clearly(db_url: str, tmp_path: Path) -> None:
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(KEY_A)) as ledger:
        token = ledger.create_token("default").secret
        reported = ledger.start(http_app.report, 3).id
        ledger.result(reported)
        flag = tmp_path / "flag"
        flag.touch()
        checked = ledger.start(http_app.flaky, 1, str(flag)).id
        with pytest.raises(fl.RunFailed):  # its attempts logged, then it failed
            ledger.result(checked)
    with serving(db_url) as server:  # no FLOWLEDGER_ENCRYPTION_KEYS in its environment
        api = server.client(token)
        run = api.get(f"/runs/{reported}")
        assert run.status_code == 200 and "encrypted with key 'key-a'" in run.json()["output"]
        logs = api.get(f"/runs/{checked}/logs")
        assert logs.status_code == 200, logs.text
        assert "encrypted with key 'key-a'" in logs.json()[0]["records"][0]["message"]
        content = api.get(f"/runs/{reported}/artifacts/report.md")
        assert content.status_code == 409, content.text
        assert "'key-a'" in content.json()["message"]
        fork = api.post(f"/runs/{reported}/fork", json={"from_position": 2})
        assert fork.status_code == 409 and "'key-a'" in fork.json()["message"], fork.text
    with fl.Ledger(db_url) as ledger:  # nothing was forked or changed
        assert ledger.runs(forked_from=reported).runs == ()


def test_a_worker_without_the_key_hands_runs_back(db_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(KEY_A)) as ledger:
        handle = ledger.submit(app.one_step, 41, queue="keyq")
    monkeypatch.delenv("FLOWLEDGER_ENCRYPTION_KEYS", raising=False)
    keyless = WorkerProcess(db_url, "--queue", "keyq")
    try:
        wait_until(lambda: "cannot read it" in keyless.output(), timeout=60,
                   what="the keyless worker to hand the run back")
    finally:
        code, output = keyless.stop()
    assert code == 0, output
    assert "'key-a'" in output and "handed back to queue 'keyq'" in output
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(handle.id)
        assert run.status is fl.RunStatus.PENDING and run.steps == ()  # not failed
        assert run.scheduled_at is not None
        delay = run.scheduled_at - datetime.now(UTC)
        assert timedelta(seconds=20) < delay <= timedelta(seconds=30)
    # Its 30 s pass (set in the database, not slept through); a worker with the key runs it.
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE flowledger_runs SET scheduled_at = 0"))
    engine.dispose()
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", KEY_A)
    keyed = WorkerProcess(db_url, "--queue", "keyq")
    try:
        with fl.Ledger(db_url) as ledger:
            assert ledger.handle(handle.id).result(timeout=60) == 42
    finally:
        code, output = keyed.stop()
    assert code == 0, output
