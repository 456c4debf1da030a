"""API tokens: looked up by the hash of their secret; revoked, never deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, insert, select, update

from ..rows import TokenRow
from ..schema import api_tokens

# The columns of a TokenRow, in its field order.
TOKEN_COLUMNS = [api_tokens.c[name] for name in TokenRow.__slots__]


def insert_token(token: TokenRow, secret_hash: str) -> Insert:
    return insert(api_tokens).values(
        id=token.id, secret_hash=secret_hash, owner=token.owner,
        admin=int(token.admin), note=token.note, created_at=token.created_at)


# The live (not revoked) token with this secret hash: run on every HTTP request, so
# compiled once and run on a raw driver connection.
TOKEN_BY_HASH = select(*TOKEN_COLUMNS).where(api_tokens.c.secret_hash == bindparam("hash"),
                                             api_tokens.c.revoked_at.is_(None))


def list_tokens(include_revoked: bool) -> Select[Any]:
    """Tokens in creation order."""
    query = select(*TOKEN_COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return query


def revoke_token(token_id: str, now: int) -> Update:
    """Revoke a live token (rowcount 0: no live token has this id)."""
    return (update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now))


def touch_token(token_id: str, at: int) -> Update:
    """Record when a token was last used."""
    return update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at)
