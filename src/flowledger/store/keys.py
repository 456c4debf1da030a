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

from .core import StoreCore
from .sealing import part_keys
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

    def payloads_outside_owner_keys(self, owner: str) -> int:
        """How many of ``owner``'s run and step payloads no owner key seals."""
        with self._read() as conn:
            return sum(int(conn.execute(query).scalar_one())
                       for query in keys_sql.outside_owner_keys(owner))

    def owner_key_rows(self) -> list[tuple[str, str, int, int | None]]:
        """(key id, owner, created_at, shredded_at) of every owner key."""
        with self._read() as conn:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(keys_sql.owner_key_rows())]

    def artifact_contents(self, after: tuple[str, str] | None,
                          limit: int) -> list[tuple[str, str]]:
        """The next (owner, digest) pairs artifacts reference, in order after ``after``."""
        with self._read() as conn:
            return [(r[0], r[1]) for r in conn.execute(
                keys_sql.artifact_contents(after, limit))]

    # -- sealed payloads -------------------------------------------------------------
    @staticmethod
    def sealed_columns() -> Sequence[SealedColumn]:
        return SEALED

    def payload_batch(self, spec: SealedColumn, primary: str, after: tuple[Any, ...] | None,
                      limit: int) -> list[tuple[tuple[Any, ...], tuple[Any, ...], str]]:
        """The next rows of ``spec`` after key ``after`` whose value may need sealing with
        ``primary``: (key column values, identity values, value)."""
        keys = len(spec.keys)
        wanted = [*spec.keys, *(c for c in spec.identity if c not in spec.keys)]
        with self._read() as conn:
            rows = conn.execute(keys_sql.payload_rows(spec, primary, after, limit)).all()
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
        """Values of ``spec`` by the key id that sealed them ('' for plaintext)."""
        counts: dict[str, int] = {}
        if spec.kind == "text":
            with self._read() as conn:
                for key_id, count in conn.execute(keys_sql.key_counts(spec, self.dialect)):
                    counts[str(key_id)] = counts.get(str(key_id), 0) + int(count)
            return counts
        after = None
        while batch := self.payload_batch(spec, "", after, 2000):
            after = batch[-1][0]
            for _, _, value in batch:
                for key_id in part_keys(spec, value):
                    counts[key_id] = counts.get(key_id, 0) + 1
        return counts
