"""The encryption side of the store: per-owner keys, and the sealed payloads rotation
re-encrypts and ``keys status`` counts."""

from __future__ import annotations

import base64
import os
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..encryption import envelope_of
from .core import StoreCore
from .sealing import sealed_parts
from .statements import keys as keys_sql
from .statements.keys import SEALED, SealedColumn

# A rewrite of one sealed value: (key column values, old value, new value).
Rewrite = tuple[tuple[Any, ...], str, str]


class StoreKeys(StoreCore):
    """Owner keys and sealed-payload walks; a part of ``SqlStore``."""

    def owner_key(self, owner: str) -> tuple[str, bytes]:
        """``owner``'s live key (id, secret), created on first use."""
        with self._read() as conn:
            row = conn.execute(keys_sql.live_owner_key(owner)).first()
        if row is not None:
            return str(row[0]), base64.b64decode(row[1])
        key_id = f"ok_{secrets.token_hex(8)}"
        secret = os.urandom(32)
        with self._write() as conn:
            conn.execute(keys_sql.insert_owner_key(
                key_id, owner, base64.b64encode(secret).decode(), time.time_ns() // 1000))
        return key_id, secret

    def owner_secret(self, key_id: str) -> bytes | None:
        """The secret of an owner key; None when it was shredded (or never existed)."""
        with self._read() as conn:
            secret = conn.execute(keys_sql.owner_secret(key_id)).scalar_one_or_none()
        return None if secret is None else base64.b64decode(secret)

    def owner_of_run(self, run_id: uuid.UUID) -> str | None:
        with self._read() as conn:
            owner = conn.execute(keys_sql.owner_of_run(run_id)).scalar_one_or_none()
        return None if owner is None else str(owner)

    def shred_owner_keys(self, owner: str, now: int) -> int:
        """Erase every live key of ``owner``; returns how many were erased."""
        with self._write() as conn:
            if self.backend.name == "sqlite":  # the erased secret is zeroed on disk too
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            return int(conn.execute(keys_sql.shred_owner(owner, now)).rowcount)

    def owner_key_rows(self) -> list[tuple[str, str, int, int | None]]:
        """(key id, owner, created_at, shredded_at) of every owner key."""
        with self._read() as conn:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(keys_sql.owner_key_rows())]

    # -- sealed payloads -------------------------------------------------------------
    @staticmethod
    def sealed_columns() -> Sequence[SealedColumn]:
        return SEALED

    def sealed_batch(self, spec: SealedColumn, not_key: str | None,
                     limit: int) -> list[tuple[tuple[Any, ...], tuple[Any, ...], str]]:
        """Up to ``limit`` rows of ``spec`` holding a value sealed with a key other than
        ``not_key``: (key column values, identity values, value)."""
        keys = len(spec.keys)
        wanted = [*spec.keys, *(c for c in spec.identity if c not in spec.keys)]
        with self._read() as conn:
            rows = conn.execute(keys_sql.sealed_rows(spec, not_key, limit)).all()
        found = []
        for row in rows:
            named = dict(zip(wanted, row[:-1], strict=True))
            found.append((tuple(row[:keys]), tuple(named[c] for c in spec.identity),
                          str(row[-1])))
        return found

    def rewrite_sealed(self, spec: SealedColumn, rewrites: Sequence[Rewrite]) -> int:
        """Apply rewrites in one transaction; returns how many rows still held their
        old value (and were rewritten)."""
        done = 0
        with self._write() as conn:
            for keys, old, new in rewrites:
                done += conn.execute(keys_sql.replace_value(spec, keys, old, new)).rowcount
        return done

    def key_counts(self, spec: SealedColumn) -> dict[str, int]:
        """Sealed values of ``spec`` by the key id that sealed them."""
        counts: dict[str, int] = {}
        if spec.kind == "text":
            with self._read() as conn:
                for key_id, count in conn.execute(keys_sql.key_counts(spec, self.dialect)):
                    counts[str(key_id)] = counts.get(str(key_id), 0) + int(count)
            return counts
        # JSON columns are few and small (step context, webhook outbox): read whole.
        for _, _, value in self.sealed_batch(spec, None, 10**9):
            for text in sealed_parts(spec, value):
                envelope = envelope_of(text)
                if envelope is not None:
                    counts[envelope.key_id] = counts.get(envelope.key_id, 0) + 1
        return counts
