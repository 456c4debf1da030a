"""API tokens for the HTTP server: created once, stored only as a hash, revocable.

A token reads ``fl_<id>_<secret>``; the id is public (``tokens ls`` shows it), the whole
token is a bearer secret. Tokens are 256-bit random values, so SHA-256 is the right hash:
a slow password hash would add latency to every request and protect nothing more.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from . import ids, validation
from .errors import ConfigurationError
from .ledgerbase import LedgerBase
from .models import from_micros
from .store import TokenRow

PREFIX = "fl_"
# Recording every use would turn each API read into a write; once a minute per token is
# enough to tell which tokens are in use.
TOUCH_EVERY_US = 60 * 1_000_000


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: never the secret itself.

    ``admin`` tokens see every owner's runs; others see only ``owner``'s.
    """

    id: str
    owner: str
    admin: bool
    note: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: TokenRow) -> TokenInfo:
        created = from_micros(row.created_at)
        assert created is not None
        return cls(row.id, row.owner, row.admin, row.note, created,
                   from_micros(row.last_used_at), from_micros(row.revoked_at))


@dataclass(frozen=True)
class NewToken:
    """``create_token``'s answer: the secret is shown this once and never stored."""

    info: TokenInfo
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class LedgerTokens(LedgerBase):
    """Token management, a part of ``Ledger``. Only an unscoped Ledger (no ``owner=``)
    manages tokens: they grant access to runs."""

    def create_token(self, owner: str, *, admin: bool = False,
                     note: str | None = None) -> NewToken:
        """A new API token acting for ``owner`` (all owners if ``admin``).

        Example::

            token = ledger.create_token("alice", note="CI")
            print(token.secret)  # give it to the client now: it cannot be shown again
        """
        self._manage_tokens()
        validation.name(owner, "owner")
        if note is not None:
            validation.text(note, "a token note")
        token_id = secrets.token_hex(6)
        secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        row = TokenRow(token_id, owner, bool(admin), note, ids.now_us(), None, None)
        self.store.insert_token(row, hash_secret(secret))
        return NewToken(TokenInfo.from_row(row), secret)

    def tokens(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        """API tokens, oldest first. Example: ``[t.id for t in ledger.tokens()]``"""
        self._manage_tokens()
        return [TokenInfo.from_row(row) for row in self.store.list_tokens(include_revoked)]

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token at once (every server checks tokens on each request).
        Returns False if no live token has that id. Example: ``ledger.revoke_token("3f2a…")``
        """
        self._manage_tokens()
        return self.store.revoke_token(token_id.strip(), ids.now_us())

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The live token this secret belongs to, or None (unknown, malformed, revoked).
        Records when the token was last used (at most once a minute)."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        row = self.store.token_by_hash(hash_secret(secret))
        if row is None:
            return None
        now = ids.now_us()
        if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY_US:
            self.store.touch_token(row.id, now)
        return TokenInfo.from_row(row)

    def _manage_tokens(self) -> None:
        if self.owner is not None:
            raise ConfigurationError("API tokens are managed with a Ledger opened "
                                     "without owner=")


__all__ = ["LedgerTokens", "NewToken", "TokenInfo"]
