"""The API-token side of the store: tokens are looked up by the hash of their secret."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from .core import StoreCore
from .rows import TokenRow
from .schema import api_tokens


def _token_row(row: Any) -> TokenRow:
    return TokenRow(row.id, row.owner, bool(row.admin), row.note, row.created_at,
                    row.last_used_at, row.revoked_at)


_COLUMNS = [api_tokens.c[name] for name in TokenRow.__slots__]


class StoreTokens(StoreCore):
    """API tokens; a part of ``SqlStore``."""

    def insert_token(self, token: TokenRow, secret_hash: str) -> None:
        with self._write() as conn:
            conn.execute(insert(api_tokens).values(
                id=token.id, secret_hash=secret_hash, owner=token.owner,
                admin=int(token.admin), note=token.note, created_at=token.created_at))

    def token_by_hash(self, secret_hash: str) -> TokenRow | None:
        """The live (not revoked) token with this secret hash."""
        with self._read() as conn:
            row = conn.execute(select(*_COLUMNS).where(
                api_tokens.c.secret_hash == secret_hash,
                api_tokens.c.revoked_at.is_(None))).first()
            return None if row is None else _token_row(row)

    def list_tokens(self, include_revoked: bool) -> list[TokenRow]:
        query = select(*_COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        with self._read() as conn:
            return [_token_row(row) for row in conn.execute(query)]

    def revoke_token(self, token_id: str, now: int) -> bool:
        """False when no live token has this id."""
        with self._write() as conn:
            return bool(conn.execute(update(api_tokens).where(
                api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)).rowcount)

    def touch_token(self, token_id: str, at: int) -> None:
        """Record when a token was last used."""
        with self._write() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                         .values(last_used_at=at))


__all__ = ["StoreTokens", "TokenRow"]

