"""The API-token side of the store: tokens are looked up by the hash of their secret."""

from __future__ import annotations

import functools
from typing import Any

from .core import StoreCore
from .rows import TokenRow
from .statements import api_tokens as api_tokens_sql
from .translate import translate_errors


def _token_row(row: Any) -> TokenRow:
    return TokenRow(row.id, row.owner, bool(row.admin), row.note, row.created_at,
                    row.last_used_at, row.revoked_at)


class StoreTokens(StoreCore):
    """API tokens; a part of ``SqlStore``."""

    def insert_token(self, token: TokenRow, secret_hash: str) -> None:
        with self._write() as conn:
            conn.execute(api_tokens_sql.insert_token(token, secret_hash))

    @functools.cached_property
    def _token_by_hash_sql(self) -> str:
        return self._compile_statement(api_tokens_sql.TOKEN_BY_HASH)

    def token_by_hash(self, secret_hash: str) -> TokenRow | None:
        """The live (not revoked) token with this secret hash (every HTTP request asks:
        one precompiled statement on a raw connection)."""
        with translate_errors(self._where):
            (rows,) = self.backend.read_snapshot([(self._token_by_hash_sql,
                                                   {"hash": secret_hash})])
        if not rows:
            return None
        found = rows[0]
        return TokenRow(found[0], found[1], bool(found[2]), *found[3:])

    def list_tokens(self, include_revoked: bool) -> list[TokenRow]:
        query = api_tokens_sql.list_tokens(include_revoked)
        with self._read() as conn:
            return [_token_row(row) for row in conn.execute(query)]

    def revoke_token(self, token_id: str, now: int) -> bool:
        """False when no live token has this id."""
        with self._write() as conn:
            return bool(conn.execute(api_tokens_sql.revoke_token(token_id, now)).rowcount)

    def touch_token(self, token_id: str, at: int) -> None:
        """Record when a token was last used."""
        with self._write() as conn:
            conn.execute(api_tokens_sql.touch_token(token_id, at))


__all__ = ["StoreTokens", "TokenRow"]
