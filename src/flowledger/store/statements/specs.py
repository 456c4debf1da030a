"""Workflow spec texts by owner and digest, registrations by name, and the LLM cache."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Update, select, text, update

from ..rows import SpecRow
from ..schema import llm_cache, specs

SPEC_COLUMNS = [specs.c[name] for name in SpecRow.__slots__]

# Texts are content-addressed: the same text stored twice is one row.
SAVE_TEXT = text("""
INSERT INTO flowledger_specs (owner, digest, name, version, text, created_at, registered_at)
VALUES (:owner, :digest, :name, :version, :text, :now, NULL)
ON CONFLICT (owner, digest) DO NOTHING
""")

CACHE_PUT = text("""
INSERT INTO flowledger_llm_cache (owner, key, model, response, created_at)
VALUES (:owner, :key, :model, :response, :now)
ON CONFLICT (owner, key) DO NOTHING
""")


def spec(owner: str, digest: str) -> Select[Any]:
    return select(*SPEC_COLUMNS).where(specs.c.owner == owner, specs.c.digest == digest)


def registered(owner: str | None, name: str | None = None,
               version: str | None = None) -> Select[Any]:
    """Registered specs, newest registration first (by name when ``name`` is given)."""
    query = select(*SPEC_COLUMNS).where(specs.c.registered_at.is_not(None))
    if owner is not None:
        query = query.where(specs.c.owner == owner)
    if name is not None:
        query = query.where(specs.c.name == name)
    if version is not None:
        query = query.where(specs.c.version == version)
    return query.order_by(specs.c.name, specs.c.registered_at.desc(), specs.c.digest)


def register(owner: str, digest: str, now: int) -> Update:
    """Register a stored text; one registered already keeps its time (and its place
    among the versions: registering it again does not make it the newest)."""
    return (update(specs).where(specs.c.owner == owner, specs.c.digest == digest,
                                specs.c.registered_at.is_(None))
            .values(registered_at=now))


def unregister(owner: str, name: str, version: str | None) -> Update:
    query = update(specs).where(specs.c.owner == owner, specs.c.name == name,
                                specs.c.registered_at.is_not(None))
    if version is not None:
        query = query.where(specs.c.version == version)
    return query.values(registered_at=None)


def cached_response(owner: str, key: str) -> Select[Any]:
    return select(llm_cache.c.response).where(llm_cache.c.owner == owner,
                                              llm_cache.c.key == key)


def text_params(row: SpecRow) -> dict[str, Any]:
    """SAVE_TEXT's parameters for a spec row."""
    return {"owner": row.owner, "digest": row.digest, "name": row.name,
            "version": row.version, "text": row.text, "now": row.created_at}
