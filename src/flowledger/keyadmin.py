"""Operating encryption at rest: ``Ledger.rotate_keys``, ``Ledger.key_status`` and
``Ledger.shred_owner`` (``flowledger keys rotate|status|shred``). ``Ledger`` inherits them.

Rotation walks every payload column (and the artifact store) in key order, a bounded
batch at a time, and seals again with the primary key whatever another key (or no key:
records written before encryption was turned on) sealed. Each batch is one short
transaction whose updates only apply where the value is still the one read, so workers
keep running: what they write meanwhile is sealed with the primary key already. A
rotation that is interrupted is simply run again: what it did is not redone.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import ids
from .encryption import BLOB_MAGIC, blob_envelope, envelope_of
from .errors import ConfigurationError, PayloadKeyMissing
from .ledgerbase import LedgerBase
from .store import SealedColumn, Sealing, rewrite_parts

DEFAULT_BATCH = 500
# A shredded payload, rewritten by a rotation: it names no key any more (``!`` is not a
# key id character), only the owner key that was erased.
SHREDDED_KEY = "!shredded"


@dataclass(frozen=True)
class RotationReport:
    """What ``Ledger.rotate_keys`` did: payloads sealed again with ``primary`` by column
    (``resealed``; ``sealed`` of them were plaintext before), artifact contents
    re-encrypted, and shredded payloads reduced to a marker that names no key.

    Example::

        report = ledger.rotate_keys()
        print(report.total, "payloads now use", report.primary)
    """

    primary: str
    resealed: dict[str, int] = field(default_factory=dict)
    sealed: int = 0
    artifacts: int = 0
    shredded: int = 0

    @property
    def total(self) -> int:
        return sum(self.resealed.values()) + self.artifacts

    def to_dict(self) -> dict[str, Any]:
        return {"primary": self.primary, "resealed": dict(self.resealed), "total": self.total,
                "sealed_from_plaintext": self.sealed, "artifacts": self.artifacts,
                "shredded": self.shredded}


@dataclass(frozen=True)
class KeyStatus:
    """How many payloads each key protects (``''``: stored in plaintext), by column and
    in all; artifact contents by key; owner keys, live and shredded.

    Example: ``ledger.key_status().by_key`` → ``{"k2": 1830, "k1": 0}``
    """

    primary: str | None
    key_ids: tuple[str, ...]
    by_column: dict[str, dict[str, int]]
    artifacts: dict[str, int]
    owner_keys: list[dict[str, Any]]

    @property
    def by_key(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for counts in (*self.by_column.values(), self.artifacts):
            for key_id, count in counts.items():
                total[key_id] = total.get(key_id, 0) + count
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"primary": self.primary, "key_ids": list(self.key_ids),
                "by_key": self.by_key, "by_column": self.by_column,
                "artifacts": self.artifacts, "owner_keys": self.owner_keys}


@dataclass(frozen=True)
class ShredReport:
    """What ``Ledger.shred_owner`` erased: the owner's keys (their payloads can never be
    read again; the records remain, shown as shredded). ``unreached`` counts the owner's
    run and step payloads no owner key sealed (written without per-owner keys, or before
    encryption was on): shredding cannot make those unreadable.

    Example: ``report = ledger.shred_owner("acme"); assert report.unreached == 0``
    """

    owner: str
    keys: int
    unreached: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "keys_erased": self.keys, "unreached": self.unreached}


class LedgerKeys(LedgerBase):
    """Key rotation, status and crypto-shredding; a part of ``Ledger``."""

    def _sealing(self) -> Sealing:
        sealing = self.store.sealing
        if not isinstance(sealing, Sealing):
            raise ConfigurationError(
                "encryption is off: set FLOWLEDGER_ENCRYPTION_KEYS (`flowledger keys "
                "generate` makes a key) or pass Ledger(encryption=fl.Keyring(...))")
        return sealing

    def rotate_keys(self, *, batch: int = DEFAULT_BATCH,
                    progress: Callable[[str, int], None] | None = None) -> RotationReport:
        """Seal every payload again with the keyring's primary key (plaintext ones too),
        in batches of ``batch`` rows, while workers keep running. Safe to interrupt and
        run again. Raises ``PayloadKeyMissing`` naming a key the keyring must hold to
        read what it re-encrypts.

        Example: ``fl.Ledger(encryption=fl.Keyring.parse("new:…,old:…")).rotate_keys()``
        """
        if batch < 1:
            raise ConfigurationError("batch must be at least 1")
        sealing = self._sealing()
        primary = sealing.keyring.primary
        resealed: dict[str, int] = {}
        counts = {"sealed": 0, "shredded": 0}

        for spec in self.store.sealed_columns():
            done = self._rotate_column(spec, sealing, batch, progress, counts)
            if done:
                resealed[spec.name] = done
        artifacts = self._rotate_artifacts(sealing, batch, progress, counts)
        return RotationReport(primary, resealed, counts["sealed"], artifacts,
                              counts["shredded"])

    def _rotate_column(self, spec: SealedColumn, sealing: Sealing, batch: int,
                       progress: Callable[[str, int], None] | None,
                       counts: dict[str, int]) -> int:
        primary = sealing.keyring.primary
        by_run = spec.identity[0] in ("id", "run_id")
        by_owner = spec.identity[0] == "owner"

        def change(text: str, aad: bytes, identity: tuple[Any, ...]) -> str:
            envelope = envelope_of(text)
            if envelope is None:  # written before encryption was on
                counts["sealed"] += 1
                run_id = identity[0] if by_run and isinstance(identity[0], uuid.UUID) else None
                owner = str(identity[0]) if by_owner else None
                return sealing.seal(text, aad, owner=owner, run_id=run_id) or text
            if envelope.key_id in (primary, SHREDDED_KEY):
                return text
            try:
                return sealing.reseal(text, aad)
            except PayloadKeyMissing as exc:
                if not exc.shredded or envelope.key_id not in sealing.keyring:
                    raise PayloadKeyMissing(
                        f"{spec.name}: {exc} — rotation reads every payload, so the "
                        "keyring must hold every key still in use (`flowledger keys "
                        "status` lists them)", exc.key_id, exc.shredded) from None
                counts["shredded"] += 1
                return f"flenc1:{SHREDDED_KEY}:{envelope.owner_key}:"

        after = None
        done = 0
        while rows := self.store.payload_batch(spec, primary, after, batch):
            after = rows[-1][0]
            rewrites = []
            for keys, identity, value in rows:
                new = rewrite_parts(spec, identity, value,
                                    functools.partial(_with_identity, change, identity))
                if new != value:
                    rewrites.append((keys, value, new))
            if rewrites:
                done += self.store.rewrite_sealed(spec, rewrites)
                if progress is not None:
                    progress(spec.name, len(rewrites))
        return done

    def _rotate_artifacts(self, sealing: Sealing, batch: int,
                          progress: Callable[[str, int], None] | None,
                          counts: dict[str, int]) -> int:
        blobs = self._runtime.artifacts
        if blobs is None:
            return 0
        primary = sealing.keyring.primary
        done = 0
        after = None
        while contents := self.store.artifact_contents(after, batch):
            after = contents[-1]
            moved = 0
            for owner, digest in contents:
                try:
                    stored = blobs.read_stored(owner, digest)
                except FileNotFoundError:
                    continue  # collected meanwhile
                envelope = blob_envelope(stored)
                if envelope is not None and envelope.key_id == primary:
                    continue
                if envelope is not None and envelope.key_id == SHREDDED_KEY:
                    continue
                try:
                    plain = sealing.open_blob(owner, digest, stored)
                except PayloadKeyMissing as exc:
                    if not exc.shredded or envelope is None:
                        raise
                    # Unreadable forever: a marker naming only the erased owner key.
                    blobs.replace_stored(owner, digest, BLOB_MAGIC + (
                        f"{SHREDDED_KEY}:{envelope.owner_key}\n").encode())
                    counts["shredded"] += 1
                    continue
                blobs.replace_stored(owner, digest, sealing.seal_blob(owner, digest, plain))
                moved += 1
            if moved and progress is not None:
                progress("artifacts", moved)
            done += moved
        return done

    def key_status(self) -> KeyStatus:
        """How many payloads each key protects, by column, and the owner keys.

        Example: ``ledger.key_status().by_key.get("old-key", 0) == 0`` once rotated
        """
        by_column = {spec.name: counts for spec in self.store.sealed_columns()
                     if (counts := self.store.key_counts(spec))}
        artifacts: dict[str, int] = {}
        blobs = self._runtime.artifacts
        after = None
        while blobs is not None and (contents := self.store.artifact_contents(after, 1000)):
            after = contents[-1]
            for owner, digest in contents:
                try:
                    head = blobs.stored_head(owner, digest, 80)
                except FileNotFoundError:
                    continue
                envelope = blob_envelope(head)
                key_id = "" if envelope is None else envelope.key_id
                artifacts[key_id] = artifacts.get(key_id, 0) + 1
        keyring = self.store.sealing.keyring
        return KeyStatus(
            keyring.primary if keyring else None, keyring.key_ids if keyring else (),
            by_column, artifacts,
            [{"id": key_id, "owner": owner, "created_at": _iso(created),
              "shredded_at": None if shredded is None else _iso(shredded)}
             for key_id, owner, created, shredded in self.store.owner_key_rows()])

    def shred_owner(self, owner: str) -> ShredReport:
        """Erase ``owner``'s keys: every payload sealed under them becomes unreadable for
        good, in every process within seconds (records, names, statuses, usage and cost
        remain). Needs per-owner keys (``Keyring(per_owner=True)``) to have been on when
        the data was written.

        Example: ``ledger.shred_owner("acme")``
        """
        sealing = self._sealing()
        if not any(row[1] == owner for row in self.store.owner_key_rows()):
            raise ConfigurationError(
                f"owner {owner!r} has no owner key: nothing of theirs was sealed with one "
                "(per-owner keys are on with FLOWLEDGER_ENCRYPTION_PER_OWNER=1 or "
                "Keyring(per_owner=True); payloads sealed with the master key itself "
                "cannot be shredded one owner at a time)")
        erased = self.store.shred_owner_keys(owner, ids.now_us())
        sealing.forget_owner(owner)
        return ShredReport(owner, erased, self.store.payloads_outside_owner_keys(owner))


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).isoformat()


def _with_identity(change: Callable[[str, bytes, tuple[Any, ...]], str],
                   identity: tuple[Any, ...], text: str, aad: bytes) -> str:
    return change(text, aad, identity)
