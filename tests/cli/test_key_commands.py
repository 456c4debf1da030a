"""flowledger keys generate | rotate | status | shred, and commands without the key."""

from __future__ import annotations

import base64

import pytest

import flowledger as fl
from tests.cli.conftest import CLI

MARK = "cli-marker-5d1e"


@fl.step()
def echo(text: str) -> str:
    return f"{text} {MARK}"


@fl.workflow(name="keyed")
def keyed(text: str) -> str:
    return echo(text)


def test_generate_prints_an_entry_the_keyring_takes(cli: CLI) -> None:
    done = cli("keys", "generate", "--id", "2026-12")
    assert done.code == 0, done.err
    entry = done.out.strip()
    key_id, _, encoded = entry.partition(":")
    assert key_id == "2026-12" and len(base64.b64decode(encoded)) == 32
    assert fl.Keyring.parse(entry).primary == "2026-12"
    other = cli("keys", "generate").out.strip()
    assert other != entry  # random keys
    bad = cli("keys", "generate", "--id", "no spaces")
    assert bad.code != 0 and "key id" in bad.err


def test_status_rotate_and_reading_without_the_key(cli: CLI, db_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = fl.Keyring.generate("old"), fl.Keyring.generate("new")
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", old)
    with fl.Ledger(db_url) as ledger:
        run_id = ledger.start(keyed, "hello").id
        ledger.result(run_id)
    status = cli("keys", "status", "--json")
    assert status.code == 0, status.err
    assert status.json()["primary"] == "old" and status.json()["by_key"]["old"] >= 4
    shown = cli("keys", "status")
    assert "runs.output" in shown.out and "old (primary)" in shown.out

    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", f"{new},{old}")
    rotated = cli("keys", "rotate", "--batch", "2", "--json")
    assert rotated.code == 0, rotated.err
    assert rotated.json()["primary"] == "new" and rotated.json()["total"] >= 4
    assert set(cli("keys", "status", "--json").json()["by_key"]) == {"new"}

    monkeypatch.delenv("FLOWLEDGER_ENCRYPTION_KEYS")
    listed = cli("runs", "--json")
    assert listed.code == 0 and listed.json()["runs"][0]["id"] == run_id
    inspected = cli("inspect", run_id)
    assert inspected.code == 0, inspected.err
    assert "encrypted with key 'new'" in inspected.out and MARK not in inspected.out
    refused = cli("keys", "rotate")
    assert refused.code != 0 and "encryption is off" in refused.err

    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", new)
    assert MARK in cli("inspect", run_id).out


def test_shred_asks_first_and_erases_one_owner(cli: CLI, db_url: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_KEYS", fl.Keyring.generate("k"))
    monkeypatch.setenv("FLOWLEDGER_ENCRYPTION_PER_OWNER", "1")
    with fl.Ledger(db_url) as ledger:
        acme = ledger.for_owner("acme").start(keyed, "acme").id
        other = ledger.for_owner("other").start(keyed, "other").id
        ledger.result(acme), ledger.result(other)
    missing = cli("keys", "shred", "--owner", "nobody", "--yes")
    assert missing.code != 0 and "no owner key" in missing.err
    shredded = cli("keys", "shred", "--owner", "acme", "--yes")
    assert shredded.code == 0, shredded.err
    assert "shredded owner acme: 1 key(s) erased" in shredded.out
    owners = cli("keys", "status", "--json").json()["owner_keys"]
    assert {o["owner"]: o["shredded_at"] is not None for o in owners} == {
        "acme": True, "other": False}
    assert "shredded" in cli("inspect", acme).out
    assert MARK in cli("inspect", other).out
