"""`flowledger tokens`: a token is printed once, stored only as a hash, and revocable;
`flowledger serve` refuses bad options before it listens."""

from __future__ import annotations

import hashlib

from sqlalchemy import create_engine, text

import flowledger as fl
from tests.cli.conftest import CLI


def _stored_hashes(db_url: str) -> list[str]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(
                text("SELECT secret_hash FROM flowledger_api_tokens"))]
    finally:
        engine.dispose()


def test_tokens_are_shown_once_stored_hashed_and_revocable(cli: CLI, db_url: str) -> None:
    created = cli("tokens", "create", "--owner", "alice", "--note", "ci")
    assert created.code == 0
    secret = created.out.strip()
    assert secret.startswith("fl_") and "cannot be shown again" in created.err
    hashes = _stored_hashes(db_url)
    assert hashes == [hashlib.sha256(secret.encode()).hexdigest()]
    admin = cli("tokens", "create", "--owner", "ops", "--admin", "--json").json()
    assert admin["admin"] is True and admin["token"].startswith("fl_")

    listed = cli("tokens", "ls", "--json").json()
    assert [(t["owner"], t["admin"], t["note"]) for t in listed] == [
        ("alice", False, "ci"), ("ops", True, None)]
    assert secret not in cli("tokens", "ls").out
    with fl.Ledger(db_url) as ledger:
        assert ledger.authenticate(secret) is not None
        assert ledger.authenticate(secret + "x") is None
        assert ledger.authenticate("not-a-token") is None

    token_id = listed[0]["id"]
    assert cli("tokens", "revoke", token_id).code == 0
    assert cli("tokens", "revoke", token_id).code == 3  # no live token with that id any more
    assert [t["owner"] for t in cli("tokens", "ls", "--json").json()] == ["ops"]
    assert len(cli("tokens", "ls", "--all", "--json").json()) == 2
    with fl.Ledger(db_url) as ledger:
        assert ledger.authenticate(secret) is None
        assert ledger.for_owner("alice").runs().runs == ()


def test_token_and_serve_options_are_checked(cli: CLI) -> None:
    assert cli("tokens", "create", "--owner", " ").code == 2
    assert cli("tokens", "create", "--owner", "a", "--note", "x" * 201).code == 2
    assert cli("serve", "--max-body", "lots").code == 2
    assert cli("serve", "--workers", "-1").code == 2
    assert cli("serve", "--app", "no.such.module").code == 2
