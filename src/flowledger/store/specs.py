"""The spec side of the store: spec texts, registrations, and the LLM response cache."""

from __future__ import annotations

from .core import StoreCore
from .rows import SpecRow
from .sealing import cache_aad
from .statements import specs as specs_sql


class StoreSpecs(StoreCore):
    """Workflow spec texts and the LLM cache; a part of ``SqlStore``."""

    def save_spec_text(self, row: SpecRow) -> None:
        """Store a spec text (once per owner and digest) without registering it: what a
        schedule of a spec needs before its first run is created."""
        with self._write() as conn:
            conn.execute(specs_sql.SAVE_TEXT, specs_sql.text_params(row))

    def spec_text(self, owner: str, digest: str) -> SpecRow | None:
        with self._read() as conn:
            found = conn.execute(specs_sql.spec(owner, digest)).first()
        return None if found is None else SpecRow(*found)

    def register_spec(self, row: SpecRow) -> SpecRow:
        """Store and register a spec text. Returns the registration that holds this name
        and version: the given one, or an earlier registration of another text under the
        same explicit version (the caller refuses that)."""
        with self._write() as conn:
            same = conn.execute(specs_sql.registered(row.owner, row.name, row.version)).first()
            if same is not None and same.digest != row.digest:
                return SpecRow(*same)
            conn.execute(specs_sql.SAVE_TEXT, specs_sql.text_params(row))
            conn.execute(specs_sql.register(row.owner, row.digest, row.registered_at or 0))
            stored = conn.execute(specs_sql.spec(row.owner, row.digest)).one()
            return SpecRow(*stored)

    def registered_specs(self, owner: str | None, name: str | None = None,
                         version: str | None = None) -> list[SpecRow]:
        with self._read() as conn:
            return [SpecRow(*row) for row in conn.execute(
                specs_sql.registered(owner, name, version))]

    def unregister_spec(self, owner: str, name: str, version: str | None) -> int:
        """Unregister a name (one version, or all); the texts stay for the runs that used
        them. Returns how many registrations were removed."""
        with self._write() as conn:
            return int(conn.execute(specs_sql.unregister(owner, name, version)).rowcount)

    def cached_response(self, owner: str, key: str) -> str | None:
        with self._read() as conn:
            found = conn.execute(specs_sql.cached_response(owner, key)).first()
        return None if found is None else self.sealing.open(str(found[0]),
                                                             cache_aad(owner, key))

    def cache_response(self, owner: str, key: str, model: str, response: str,
                       now: int) -> None:
        response = self.sealing.seal(response, cache_aad(owner, key), owner=owner) or ""
        with self._write() as conn:
            conn.execute(specs_sql.CACHE_PUT, {
                "owner": owner, "key": key, "model": model, "response": response,
                "now": now})


__all__ = ["SpecRow", "StoreSpecs"]
