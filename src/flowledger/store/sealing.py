"""Payloads sealed on their way into the store and opened on their way out.

``SqlStore`` hands every payload column it writes to its ``sealing`` (``NO_SEALING``
unless the Ledger has a keyring), naming the record the payload belongs to; the same
identity authenticates it on read, so a ciphertext moved to another row does not open.
A payload whose key this process lacks is returned still sealed (``is_sealed``): callers
show what it is, and replays refuse it (``encryption.readable``). One that does not
authenticate raises ``PayloadTampered``.

Record identities (the associated data; ``record_aad``):

==========================  ==============================================
payload                     identity
==========================  ==============================================
run inputs/output/error     ``runs``, field, run id
step input/output/error     ``steps``, field, run id, position (attempt errors too)
context value               ``context``, ``value``, run id, name
step logs                   ``steps``, ``logs``, run id, position
event payload / refusal     ``events``, field, run id, event name
schedule inputs             ``schedules``, ``inputs``, schedule name
LLM cache response          ``llm_cache``, ``response``, owner, key
artifact content            ``artifacts``, ``content``, owner, digest
==========================  ==============================================
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..encryption import ENV_KEYS, Keyring, blob_envelope, envelope_of, is_sealed, record_aad
from ..errors import PayloadKeyMissing
from .rows import AttemptRow, DeliveryRow, EventRow, LogRow, RunRow, ScheduleRow, StepRow
from .statements.keys import SealedColumn

# How long a process trusts an owner key it read: a shred in another process takes
# effect here within this time.
OWNER_KEY_TTL = 10.0
ARCHIVE_AAD = b"flowledger|retention archive"


def run_aad(field: str, run_id: object) -> bytes:
    return record_aad("runs", field, run_id)


def step_aad(field: str, run_id: object, position: int) -> bytes:
    return record_aad("steps", field, run_id, position)


def context_aad(run_id: object, name: str) -> bytes:
    return record_aad("context", "value", run_id, name)


def event_aad(field: str, run_id: object, name: str) -> bytes:
    return record_aad("events", field, run_id, name)


def schedule_aad(name: str) -> bytes:
    return record_aad("schedules", "inputs", name)


def cache_aad(owner: str, key: str) -> bytes:
    return record_aad("llm_cache", "response", owner, key)


def blob_aad(owner: str, digest: str) -> bytes:
    return record_aad("artifacts", "content", owner, digest)


class OwnerKeySource(Protocol):
    """What sealing needs of the store for per-owner keys (``StoreKeys`` provides it)."""

    def owner_key(self, owner: str) -> tuple[str, bytes]: ...

    def owner_secret(self, key_id: str) -> bytes | None: ...

    def owner_of_run(self, run_id: uuid.UUID) -> str | None: ...


def _unsealed(content: bytes, what: str) -> bytes:
    """``content`` as it is, unless it is sealed: then a process without a keyring says
    so (never hands out ciphertext as content)."""
    envelope = blob_envelope(content)
    if envelope is not None:
        raise PayloadKeyMissing(f"{what} is encrypted with key {envelope.key_id!r} and this "
                                f"process has no keyring: set {ENV_KEYS} with it",
                                envelope.key_id)
    return content


class NoSealing:
    """Payloads stored as they are (no keyring)."""

    active = False
    keyring: Keyring | None = None

    def seal(self, text: str | None, aad: bytes, *, owner: str | None = None,
             run_id: uuid.UUID | None = None) -> str | None:
        return text

    def open(self, text: str | None, aad: bytes) -> str | None:
        return text

    def prepare(self, owner: str) -> None:
        return None

    def move(self, text: str | None, aad: bytes, new_aad: bytes) -> str | None:
        return text

    def seal_blob(self, owner: str, digest: str, content: bytes) -> bytes:
        return content

    def open_blob(self, owner: str, digest: str, content: bytes) -> bytes:
        return _unsealed(content, "this artifact's content")

    def reusable(self, owner: str, head: bytes) -> bool:
        """Whether stored content starting with ``head`` is what this process would write
        (without a keyring: plaintext)."""
        return blob_envelope(head) is None

    def seal_archive(self, content: bytes) -> bytes:
        return content

    def open_archive(self, content: bytes) -> bytes:
        return _unsealed(content, "this archive")

    # Row helpers: whole rows opened in place (rows are mutable dataclasses).
    def run_row(self, row: RunRow) -> RunRow:
        return row

    def step_row(self, row: StepRow) -> StepRow:
        return row

    def attempt_row(self, row: AttemptRow) -> AttemptRow:
        return row

    def event_row(self, row: EventRow) -> EventRow:
        return row

    def log_row(self, run_id: uuid.UUID, row: LogRow) -> LogRow:
        return row

    def schedule_row(self, row: ScheduleRow) -> ScheduleRow:
        return row

    def delivery_row(self, row: DeliveryRow) -> DeliveryRow:
        return row

    def step_context(self, run_id: uuid.UUID, values: Mapping[str, str | None]
                     ) -> dict[str, str | None]:
        return dict(values)


class Sealing(NoSealing):
    """Seals with ``keyring`` (per owner when it says so, with keys ``keys`` keeps)."""

    active = True
    keyring: Keyring

    def __init__(self, keyring: Keyring, keys: OwnerKeySource) -> None:
        self.keyring = keyring
        self._keys = keys
        self._lock = threading.Lock()
        self._owner_keys: dict[str, tuple[float, tuple[str, bytes]]] = {}
        self._secrets: dict[str, tuple[float, bytes | None]] = {}
        self._run_owners: dict[uuid.UUID, str] = {}

    # -- text ----------------------------------------------------------------------
    def seal(self, text: str | None, aad: bytes, *, owner: str | None = None,
             run_id: uuid.UUID | None = None) -> str | None:
        if text is None or is_sealed(text):
            return text
        owner_key = None
        if self.keyring.per_owner:
            if owner is None and run_id is not None:
                owner = self._owner_of(run_id)
            if owner is not None:
                owner_key = self._owner_key(owner)
        return self.keyring.seal(text, aad, owner_key)

    def open(self, text: str | None, aad: bytes) -> str | None:
        if text is None or not is_sealed(text):
            return text
        try:
            return self.open_strict(text, aad)
        except PayloadKeyMissing:
            return text  # still sealed: shown as such, refused by replays

    def open_strict(self, text: str, aad: bytes) -> str:
        """Open, raising ``PayloadKeyMissing`` when this process cannot."""
        envelope = envelope_of(text)
        secret = None
        if envelope is not None and envelope.owner_key is not None:
            secret = self._secret(envelope.owner_key)
        return self.keyring.open(text, aad, secret)

    def reseal(self, text: str, aad: bytes, new_aad: bytes | None = None) -> str:
        """``text`` opened and sealed again with the primary key, keeping its owner key
        (rotation), for ``new_aad`` when it moves to another record (fork copies)."""
        envelope = envelope_of(text)
        plain = self.open_strict(text, aad)
        owner_key = None
        if envelope is not None and envelope.owner_key is not None:
            secret = self._secret(envelope.owner_key)
            assert secret is not None  # open_strict raised otherwise
            owner_key = (envelope.owner_key, secret)
        return self.keyring.seal(plain, aad if new_aad is None else new_aad, owner_key)

    def move(self, text: str | None, aad: bytes, new_aad: bytes) -> str | None:
        """Sealed ``text`` of one record, sealed again for another (a fork's copy)."""
        if text is None or not is_sealed(text):
            return text
        return self.reseal(text, aad, new_aad)

    def prepare(self, owner: str) -> None:
        """Make sure ``owner``'s key exists before a transaction that seals for it
        (creating it inside one would wait on that transaction's own lock)."""
        if self.keyring.per_owner:
            self._owner_key(owner)

    # -- artifact content ------------------------------------------------------------
    def seal_blob(self, owner: str, digest: str, content: bytes) -> bytes:
        owner_key = self._owner_key(owner) if self.keyring.per_owner else None
        return self.keyring.seal_bytes(content, blob_aad(owner, digest), owner_key)

    def reusable(self, owner: str, head: bytes) -> bool:
        envelope = blob_envelope(head)
        if envelope is None or envelope.key_id not in self.keyring:
            return False
        if not self.keyring.per_owner:
            return envelope.owner_key is None
        return envelope.owner_key == self._owner_key(owner)[0]

    def open_blob(self, owner: str, digest: str, content: bytes) -> bytes:
        envelope = blob_envelope(content)
        if envelope is None:
            return content
        secret = None if envelope.owner_key is None else self._secret(envelope.owner_key)
        return self.keyring.open_bytes(content, blob_aad(owner, digest), secret)

    # -- retention archives (whole objects, with the master key: they span owners) ----
    def seal_archive(self, content: bytes) -> bytes:
        return self.keyring.seal_bytes(content, ARCHIVE_AAD)

    def open_archive(self, content: bytes) -> bytes:
        if blob_envelope(content) is None:  # written while encryption was off
            return content
        return self.keyring.open_bytes(content, ARCHIVE_AAD)

    # -- rows ----------------------------------------------------------------------
    def run_row(self, row: RunRow) -> RunRow:
        self._run_owners[row.id] = row.owner
        row.inputs = self.open(row.inputs, run_aad("inputs", row.id))
        row.output = self.open(row.output, run_aad("output", row.id))
        row.error = self.open(row.error, run_aad("error", row.id))
        return row

    def step_row(self, row: StepRow) -> StepRow:
        row.input = self.open(row.input, step_aad("input", row.run_id, row.position))
        row.output = self.open(row.output, step_aad("output", row.run_id, row.position))
        row.error = self.open(row.error, step_aad("error", row.run_id, row.position))
        if row.context:
            values = json.loads(row.context)
            row.context = json.dumps({name: self.open(value, context_aad(row.run_id, name))
                                      for name, value in values.items()})
        return row

    def attempt_row(self, row: AttemptRow) -> AttemptRow:
        row.error = self.open(row.error, step_aad("error", row.run_id, row.position))
        return row

    def event_row(self, row: EventRow) -> EventRow:
        row.payload = self.open(row.payload, event_aad("payload", row.run_id, row.name))
        row.error = self.open(row.error, event_aad("error", row.run_id, row.name))
        return row

    def log_row(self, run_id: uuid.UUID, row: LogRow) -> LogRow:
        row.records = self.open(row.records, step_aad("logs", run_id, row.position)) or ""
        return row

    def schedule_row(self, row: ScheduleRow) -> ScheduleRow:
        row.inputs = self.open(row.inputs, schedule_aad(row.name))
        return row

    def delivery_row(self, row: DeliveryRow) -> DeliveryRow:
        # The outbox trigger copied the run's (sealed) error into the payload.
        if "flenc1:" not in row.payload:
            return row
        snapshot = json.loads(row.payload)
        snapshot["error"] = self.open(snapshot.get("error"), run_aad("error", row.run_id))
        return dataclasses.replace(row, payload=json.dumps(snapshot))

    def step_context(self, run_id: uuid.UUID, values: Mapping[str, str | None]
                     ) -> dict[str, str | None]:
        return {name: self.seal(value, context_aad(run_id, name), run_id=run_id)
                for name, value in values.items()}

    # -- owner keys ----------------------------------------------------------------
    def _owner_of(self, run_id: uuid.UUID) -> str | None:
        owner = self._run_owners.get(run_id)
        if owner is None:
            owner = self._keys.owner_of_run(run_id)
            if owner is not None:
                if len(self._run_owners) > 100_000:
                    self._run_owners.clear()
                self._run_owners[run_id] = owner
        return owner

    def _owner_key(self, owner: str) -> tuple[str, bytes]:
        now = time.monotonic()
        cached = self._owner_keys.get(owner)
        if cached is not None and now - cached[0] < OWNER_KEY_TTL:
            return cached[1]
        with self._lock:
            key = self._keys.owner_key(owner)
            self._owner_keys[owner] = (now, key)
            self._secrets[key[0]] = (now, key[1])
            return key

    def _secret(self, key_id: str) -> bytes | None:
        now = time.monotonic()
        cached = self._secrets.get(key_id)
        if cached is not None and now - cached[0] < OWNER_KEY_TTL:
            return cached[1]
        secret = self._keys.owner_secret(key_id)
        self._secrets[key_id] = (now, secret)
        return secret

    def forget_owner(self, owner: str) -> None:
        """Drop what this process cached of ``owner``'s keys (after a shred)."""
        with self._lock:
            cached = self._owner_keys.pop(owner, None)
            if cached is not None:
                self._secrets.pop(cached[1][0], None)
            self._secrets.clear()


NO_SEALING = NoSealing()


def part_keys(spec: SealedColumn, value: str) -> list[str]:
    """The key id of each payload a stored value holds ('' for plaintext); JSON columns
    hold several (or none)."""
    found: list[str] = []

    def note(text: str, aad: bytes) -> str:
        envelope = envelope_of(text)
        found.append("" if envelope is None else envelope.key_id)
        return text

    rewrite_parts(spec, (), value, note)
    return found


def rewrite_parts(spec: SealedColumn, identity: tuple[Any, ...], value: str,
                  change: Callable[[str, bytes], str]) -> str:
    """``value`` with each payload it holds replaced by ``change(text, its record
    identity)``: the value itself, each value of a step's context, a delivery's error."""
    table, field = spec.aad
    if spec.kind == "text":
        return change(value, record_aad(table, field, *identity))
    data = json.loads(value)
    if spec.kind == "context":
        for name, text in data.items():
            if isinstance(text, str):
                data[name] = change(text, record_aad(table, field, *identity, name))
    elif isinstance(data.get("error"), str):
        data["error"] = change(data["error"], record_aad(table, field, *identity))
    return json.dumps(data)
