"""Encryption at rest: no payload reaches the database or the artifact store in
plaintext; ciphertexts are bound to their record; missing keys and tampering are clear."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import flowledger as fl
from flowledger.errors import PayloadKeyMissing, PayloadTampered

MARK = "MARKER-7f3a9c-secret"


def keyring(*ids: str, per_owner: bool = False) -> fl.Keyring:
    return fl.Keyring.parse(",".join(fl.Keyring.generate(i) for i in ids), per_owner=per_owner)


@fl.step(retries=1, backoff=0.001)
def gather(text: str) -> dict[str, Any]:
    fl.context.set("note", f"context {MARK}")
    fl.artifacts.save("report.txt", f"artifact {MARK}")
    logging.getLogger("tests.encryption").warning("logged %s", MARK)
    if fl.current_step().attempt == 1:
        raise RuntimeError(f"first try fails with {MARK}")
    return {"text": text, "mark": MARK}


@fl.step()
def shout(found: dict[str, Any]) -> str:
    return str(found["text"]).upper()


@fl.workflow(name="enc_flow")
def enc_flow(text: str) -> str:
    found = gather(text)
    fl.context.set("body", f"body {MARK}")
    return shout(found) + MARK


@fl.workflow(name="enc_waits")
def enc_waits() -> Any:
    return fl.wait_for_event("approve", timeout=3600)


def _text_columns(url: str) -> list[str]:
    """Every text value of every flowledger table."""
    engine = sa.create_engine(url)
    found: list[str] = []
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                if not table.name.startswith("flowledger_"):
                    continue
                for row in conn.execute(sa.select(table)):
                    found.extend(str(v) for v in row if isinstance(v, str))
    finally:
        engine.dispose()
    return found


def _scan_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and MARK.encode() in p.read_bytes()]


def _record_everything(ledger: fl.Ledger) -> str:
    run_id = ledger.start(enc_flow, f"input {MARK}").id
    assert ledger.result(run_id) == f"INPUT {MARK}".upper() + MARK
    waiting = ledger.start(enc_waits)
    ledger.send_event(waiting.id, "approve", {"by": f"event {MARK}"})
    assert ledger.result(waiting.id) == {"by": f"event {MARK}"}
    return str(run_id)


def test_no_plaintext_in_the_database_or_the_artifact_store(db_url: str,
                                                            tmp_path: Path) -> None:
    keys = keyring("k1")
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path / "blobs")) as ledger:
        run_id = _record_everything(ledger)
        fork = ledger.fork(run_id, 2)
        assert ledger.result(fork.id) == f"INPUT {MARK}".upper() + MARK
        # Everything reads back in plaintext with the key.
        run = ledger.get(run_id)
        assert run.inputs == {"text": f"input {MARK}"}
        assert run.steps[0].output == {"text": f"input {MARK}", "mark": MARK}
        assert MARK in run.steps[0].attempt_history[0].error.message  # type: ignore[union-attr]
        assert run.context == {"note": f"context {MARK}", "body": f"body {MARK}"}
        assert ledger.artifacts(run_id).get("report.txt") == f"artifact {MARK}"
        assert any(MARK in r.message for a in ledger.logs(run_id) for r in a.records)
        assert ledger.get(fork.id).context["note"] == f"context {MARK}"
    values = _text_columns(db_url)
    assert not [v for v in values if MARK in v]
    assert any(v.startswith("flenc1:k1:") for v in values)
    assert _scan_files(tmp_path / "blobs") == []
    if db_url.startswith("sqlite"):
        database = Path(db_url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):
            assert MARK.encode() not in path.read_bytes(), path


def _steps_table() -> str:
    return "flowledger_steps"


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(db_url: str,
                                                            tmp_path: Path) -> None:
    keys = keyring("k1")
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger:
        first = ledger.start(enc_flow, "one").id
        second = ledger.start(enc_flow, "two").id
        ledger.result(first), ledger.result(second)
    engine = sa.create_engine(db_url)
    steps = sa.table("flowledger_steps", sa.column("run_id", sa.Uuid()), sa.column("position"),
                     sa.column("output"))
    with engine.begin() as conn:
        moved = conn.execute(sa.select(steps.c.output).where(
            steps.c.run_id == uuid.UUID(first), steps.c.position == 1)).scalar_one()
        # The same run's other step, and the same step of another run.
        conn.execute(sa.update(steps).where(steps.c.run_id == uuid.UUID(first),
                                            steps.c.position == 2).values(output=moved))
        conn.execute(sa.update(steps).where(steps.c.run_id == uuid.UUID(second),
                                            steps.c.position == 1).values(output=moved))
    engine.dispose()
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger:
        for run_id in (first, second):
            with pytest.raises(PayloadTampered, match="moved from another record"):
                ledger.get(run_id)
        with pytest.raises(PayloadTampered):
            ledger.step(second, 1)


def test_a_tampered_ciphertext_is_an_error_never_garbage(db_url: str, tmp_path: Path) -> None:
    keys = keyring("k1")
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger:
        run_id = ledger.start(enc_flow, "x").id
        ledger.result(run_id)
    engine = sa.create_engine(db_url)
    runs = sa.table("flowledger_runs", sa.column("id", sa.Uuid()), sa.column("output"))
    key = fl.ids.parse_run_id(run_id)
    with engine.begin() as conn:
        sealed = conn.execute(sa.select(runs.c.output).where(runs.c.id == key)).scalar_one()
        flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
        conn.execute(sa.update(runs).where(runs.c.id == key).values(output=flipped))
    engine.dispose()
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger, \
            pytest.raises(PayloadTampered, match="altered"):
        ledger.get(run_id)


def test_without_the_key_metadata_reads_and_payloads_say_which_key(db_url: str,
                                                                   tmp_path: Path) -> None:
    with fl.Ledger(db_url, encryption=keyring("k-gone"), artifacts=str(tmp_path)) as ledger:
        run_id = _record_everything(ledger)
    with fl.Ledger(db_url, artifacts=str(tmp_path)) as ledger:
        listed = ledger.runs(workflow="enc_flow")
        assert [r.id for r in listed.runs] == [run_id]
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.COMPLETED and len(run.steps) == 2
        assert isinstance(run.output, fl.SealedPayload) and run.output.key_id == "k-gone"
        assert "k-gone" in run.inputs and "encrypted" in run.inputs
        assert "k-gone" in run.steps[0].attempt_history[0].error.message  # type: ignore[union-attr]
        with pytest.raises(PayloadKeyMissing, match="'k-gone'"):
            ledger.result(run_id)
        with pytest.raises(PayloadKeyMissing, match="'k-gone'"):
            ledger.artifacts(run_id).get("report.txt")
        # Purging needs no key.
        assert ledger.purge(0).runs == 2


def test_a_wrong_key_with_the_right_id_is_an_error(db_url: str, tmp_path: Path) -> None:
    with fl.Ledger(db_url, encryption=keyring("same"), artifacts=str(tmp_path)) as ledger:
        run_id = ledger.start(enc_flow, "x").id
        ledger.result(run_id)
    with fl.Ledger(db_url, encryption=keyring("same"), artifacts=str(tmp_path)) as ledger, \
            pytest.raises(PayloadTampered):
        ledger.get(run_id)


def test_rotation_re_encrypts_everything_with_the_new_primary(db_url: str,
                                                              tmp_path: Path) -> None:
    old = fl.Keyring.generate("old")
    new = fl.Keyring.generate("new")
    # Records written before encryption was on are encrypted by a rotation too.
    with fl.Ledger(db_url, artifacts=str(tmp_path)) as ledger:
        plain_run = ledger.start(enc_flow, "plain").id
        ledger.result(plain_run)
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(old),
                   artifacts=str(tmp_path)) as ledger:
        run_id = _record_everything(ledger)
        before = ledger.key_status().by_key
        assert before["old"] > 10 and before[""] > 5
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(f"{new},{old}"),
                   artifacts=str(tmp_path)) as ledger:
        report = ledger.rotate_keys(batch=3)
        assert report.primary == "new" and report.total > 15 and report.sealed > 5
        status = ledger.key_status()
        assert set(status.by_key) == {"new"}, status.by_key
        assert status.by_key["new"] == before["old"] + before[""]
        assert ledger.rotate_keys().total == 0  # nothing left: a second run is a no-op
    assert not [v for v in _text_columns(db_url) if "flenc1:old:" in v or MARK in v]
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(new), artifacts=str(tmp_path)) as ledger:
        run = ledger.get(run_id)
        assert run.inputs == {"text": f"input {MARK}"}
        assert run.context["note"] == f"context {MARK}"
        assert ledger.artifacts(run_id).get("report.txt") == f"artifact {MARK}"
        assert ledger.result(plain_run) == "PLAIN" + MARK
        assert any(MARK in r.message for a in ledger.logs(run_id) for r in a.records)


def test_rotation_needs_every_key_in_use(db_url: str, tmp_path: Path) -> None:
    with fl.Ledger(db_url, encryption=keyring("lost"), artifacts=str(tmp_path)) as ledger:
        ledger.result(ledger.start(enc_flow, "x").id)
    with fl.Ledger(db_url, encryption=keyring("other"), artifacts=str(tmp_path)) as ledger:
        with pytest.raises(PayloadKeyMissing, match=r"'lost'.*keys status"):
            ledger.rotate_keys()
        assert ledger.key_status().by_key["lost"] > 0  # nothing was damaged


def test_shredding_one_owner_leaves_the_others_intact(db_url: str, tmp_path: Path) -> None:
    keys = keyring("master", per_owner=True)
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger:
        alice = ledger.for_owner("alice").start(enc_flow, "alice").id
        bob = ledger.for_owner("bob").start(enc_flow, "bob").id
        ledger.result(alice), ledger.result(bob)
        report = ledger.shred_owner("alice")
        assert (report.keys, report.unreached) == (1, 0)
        gone = ledger.get(alice)
        assert gone.status is fl.RunStatus.COMPLETED and len(gone.steps) == 2
        assert isinstance(gone.output, fl.SealedPayload) and gone.output.shredded
        assert "shredded" in gone.steps[0].output
        with pytest.raises(PayloadKeyMissing, match="shredded"):
            ledger.result(alice)
        with pytest.raises(PayloadKeyMissing):
            ledger.artifacts(alice).get("report.txt")
        assert ledger.result(bob) == "BOB" + MARK
        assert ledger.artifacts(bob).get("report.txt") == f"artifact {MARK}"
        with pytest.raises(fl.ConfigurationError, match="no owner key"):
            ledger.shred_owner("carol")
    # Other processes (a new Ledger) cannot read it either, even with the master key.
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger:
        assert isinstance(ledger.get(alice).inputs, fl.SealedPayload)
        assert ledger.get(bob).inputs == {"text": "bob"}
        # New runs of the shredded owner get a new key.
        again = ledger.for_owner("alice").start(enc_flow, "again").id
        assert ledger.result(again) == "AGAIN" + MARK
    # A rotation to a new master key reduces shredded payloads to a marker naming no key.
    rotated_keys = fl.Keyring.parse(fl.Keyring.generate("next") + "," + ",".join(
        f"{k}:{base64.b64encode(keys.key(k)).decode()}" for k in keys.key_ids), per_owner=True)
    with fl.Ledger(db_url, encryption=rotated_keys, artifacts=str(tmp_path)) as ledger:
        rotated = ledger.rotate_keys()
        assert rotated.shredded > 0
        assert isinstance(ledger.get(alice).output, fl.SealedPayload)
        assert ledger.get(bob).inputs == {"text": "bob"}
        assert set(ledger.key_status().by_key) <= {"next", "!shredded"}


def test_keyring_input_errors_are_clear() -> None:
    with pytest.raises(fl.ConfigurationError, match="without ':'"):
        fl.Keyring.parse("justbase64")
    with pytest.raises(fl.ConfigurationError, match="not valid base64"):
        fl.Keyring.parse("k1:***")
    with pytest.raises(fl.ConfigurationError, match="32 bytes"):
        fl.Keyring.parse("k1:AAAA")
    entry = fl.Keyring.generate("k1")
    with pytest.raises(fl.ConfigurationError, match="twice"):
        fl.Keyring.parse(f"{entry},{entry}")
    with pytest.raises(fl.ConfigurationError, match="key id"):
        fl.Keyring.generate("bad id!")
    with pytest.raises(fl.ConfigurationError, match="at least one"):
        fl.Keyring({})
    assert "AAAA" not in repr(fl.Keyring.parse(entry))  # keys never shown


def test_the_environment_variable_turns_it_on(db_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", fl.Keyring.generate("env"))
    with fl.Ledger(db_url, artifacts=str(tmp_path)) as ledger:
        run_id = ledger.start(enc_flow, f"input {MARK}").id
        assert ledger.result(run_id).endswith(MARK)
        assert ledger.key_status().primary == "env"
    assert not [v for v in _text_columns(db_url) if MARK in v]
    monkeypatch.delenv("FLOWLEDGER_ENCRYPTION_KEYS")
    with fl.Ledger(db_url, artifacts=str(tmp_path)) as ledger:
        with pytest.raises(PayloadKeyMissing, match="'env'"):
            ledger.result(run_id)
        with pytest.raises(fl.ConfigurationError, match="encryption is off"):
            ledger.rotate_keys()


@fl.step()
def flaky_once(x: int) -> int:
    if FAIL_ONCE:
        FAIL_ONCE.pop()
        raise RuntimeError("not yet")
    return x * 2


FAIL_ONCE: list[bool] = []


@fl.workflow(name="enc_flaky")
def enc_flaky(x: int) -> int:
    return flaky_once(x + 1)


def test_a_resume_without_the_key_is_refused_before_it_takes_the_run(
        db_url: str, tmp_path: Path) -> None:
    keys = keyring("rk")
    FAIL_ONCE.append(True)
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger:
        run_id = ledger.start(enc_flaky, 1).id
        with pytest.raises(fl.RunFailed):
            ledger.result(run_id)
    with fl.Ledger(db_url, artifacts=str(tmp_path)) as ledger:
        with pytest.raises(PayloadKeyMissing, match=r"input payload of run .* 'rk'"):
            ledger.resume(run_id)
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.FAILED and run.recovery_attempts == 0
    with fl.Ledger(db_url, encryption=keys, artifacts=str(tmp_path)) as ledger:
        assert ledger.resume(run_id).result() == 4


def test_shredding_says_what_it_cannot_reach(db_url: str, tmp_path: Path) -> None:
    master = fl.Keyring.generate("m")
    # One run of the owner written without per-owner keys: shredding cannot reach it.
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(master),
                   artifacts=str(tmp_path)) as ledger:
        early = ledger.for_owner("mixed").start(enc_flow, "early").id
        ledger.result(early)
    with fl.Ledger(db_url, encryption=fl.Keyring.parse(master, per_owner=True),
                   artifacts=str(tmp_path)) as ledger:
        late = ledger.for_owner("mixed").start(enc_flow, "late").id
        ledger.result(late)
        report = ledger.shred_owner("mixed")
        assert report.keys == 1 and report.unreached == 6  # inputs, output; 2 steps x 2
        assert ledger.get(early).inputs == {"text": "early"}
        assert isinstance(ledger.get(late).inputs, fl.SealedPayload)
        assert ledger.shred_owner("mixed").keys == 0  # nothing live left


def test_artifact_content_is_reused_only_in_the_form_a_process_writes(
        db_url: str, tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    with fl.Ledger(db_url, artifacts=str(blobs)) as plain:  # before encryption was on
        first = plain.start(enc_flow, "same").id
        plain.result(first)
    assert _scan_files(blobs)  # plaintext on disk
    keys = keyring("k", per_owner=True)
    with fl.Ledger(db_url, encryption=keys, artifacts=str(blobs)) as ledger:
        second = ledger.start(enc_flow, "same").id
        ledger.result(second)
        assert _scan_files(blobs) == []  # the same content, now sealed
        assert ledger.artifacts(first).get("report.txt") == f"artifact {MARK}"
        ledger.shred_owner("default")
        third = ledger.start(enc_flow, "same").id  # a new owner key: readable again
        ledger.result(third)
        assert ledger.artifacts(third).get("report.txt") == f"artifact {MARK}"


def test_without_the_key_archiving_purges_and_diffs_refuse(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fl.Ledger(db_url, encryption=keyring("held"), artifacts=str(tmp_path)) as ledger:
        first = ledger.start(enc_flow, "one").id
        second = ledger.start(enc_flow, "two").id
        ledger.result(first), ledger.result(second)
    archive = tmp_path / "archive.jsonl.gz"
    with fl.Ledger(db_url, artifacts=str(tmp_path)) as ledger:
        with pytest.raises(PayloadKeyMissing, match=r"'held'.*nothing of this batch"):
            ledger.purge(0, archive=str(archive))
        assert len(ledger.runs().runs) == 2  # nothing deleted
        with pytest.raises(PayloadKeyMissing, match="cannot be compared"):
            ledger.diff(first, second)
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", fl.Keyring.generate("x"))
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_PER_OWNER", "sure")
    with pytest.raises(fl.ConfigurationError, match="FLOWLEDGER_ENCRYPTION_PER_OWNER"):
        fl.Keyring.from_env()
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_PER_OWNER", "on")
    assert fl.Keyring.from_env().per_owner  # type: ignore[union-attr]
