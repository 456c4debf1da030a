"""Encryption at rest: ``fl.Keyring`` and the sealed form payloads take in the store.

Payloads (run and step inputs, outputs, errors, context values, step logs, event
payloads, artifact content) are sealed with AES-256-GCM before they reach the database
or the artifact store. Each ciphertext names the key that sealed it, and is
authenticated together with the identity of the record it belongs to (table, column,
run id, position…), so a ciphertext copied into another row does not decrypt.

Sealed text looks like ``flenc1:<key id>:<owner key id or ->:<base64url(nonce|ct)>``.
With per-owner keys (``Keyring(..., per_owner=True)``) a payload is sealed with a key
derived (HKDF-SHA256) from the master key and a random secret of its owner kept in the
database; erasing that secret (``flowledger keys shred --owner X``) makes every payload of
the owner unreadable for good, while the master key still opens everyone else's.

Example::

    keyring = fl.Keyring.parse("k2:" + new_key + ",k1:" + old_key)   # k2 is primary
    ledger = fl.Ledger("sqlite:///runs.db", encryption=keyring)
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigurationError, PayloadKeyMissing, PayloadTampered

if TYPE_CHECKING:  # cryptography is imported when a key is first used
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_KEYS = "FLOWLEDGER_ENCRYPTION_KEYS"
ENV_PER_OWNER = "FLOWLEDGER_ENCRYPTION_PER_OWNER"
PREFIX = "flenc1:"
BLOB_MAGIC = b"FLENC1\n"
NONCE = 12
KEY_BYTES = 32
NO_OWNER_KEY = "-"
ENCRYPTED_ERROR = "flowledger.Encrypted"  # the type of an error this process cannot open
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_URLSAFE = str.maketrans("+/", "-_")  # base64url, as urlsafe_b64encode writes it


@dataclass(frozen=True)
class Envelope:
    """What the header of sealed text or content says: the master key id, and the owner
    key id (None: sealed with the master key itself)."""

    key_id: str
    owner_key: str | None


class Keyring:
    """Named 256-bit keys; the first (or ``primary``) seals new payloads, every key
    opens what it sealed.

    ``per_owner`` seals each owner's payloads with a key of their own, derived from the
    master key and a secret per owner kept in the database, so one owner's data can be
    crypto-shredded. Build one with ``Keyring.parse("id1:BASE64,id2:BASE64")`` (the format
    of the ``FLOWLEDGER_ENCRYPTION_KEYS`` environment variable) or ``Keyring({"id": key})``.

    Example::

        keyring = fl.Keyring({"2026-12": os.urandom(32)})
        ledger = fl.Ledger(encryption=keyring)
    """

    def __init__(self, keys: Mapping[str, bytes] | Sequence[tuple[str, bytes]], *,
                 primary: str | None = None, per_owner: bool = False) -> None:
        pairs = list(keys.items()) if isinstance(keys, Mapping) else list(keys)
        if not pairs:
            raise ConfigurationError("a Keyring needs at least one key")
        self._keys: dict[str, bytes] = {}
        for key_id, key in pairs:
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise ConfigurationError(
                    f"key id {key_id!r} must be 1-32 letters, digits, '.', '_' or '-'")
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
                size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
                raise ConfigurationError(f"key {key_id!r} must be {KEY_BYTES} bytes "
                                         f"(AES-256), not {size}")
            if key_id in self._keys:
                raise ConfigurationError(f"key id {key_id!r} appears twice in the keyring")
            self._keys[key_id] = bytes(key)
        self.primary = primary or pairs[0][0]
        if self.primary not in self._keys:
            raise ConfigurationError(f"primary key {self.primary!r} is not in the keyring")
        self.per_owner = per_owner
        self._ciphers: dict[tuple[str, str | None], AESGCM] = {}

    @classmethod
    def parse(cls, text: str, *, per_owner: bool = False) -> Keyring:
        """A keyring from ``id1:BASE64KEY,id2:BASE64KEY`` (the first is primary).

        Example: ``fl.Keyring.parse(os.environ["FLOWLEDGER_ENCRYPTION_KEYS"])``
        """
        pairs = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise ConfigurationError(
                    f"{ENV_KEYS} entries are id:BASE64KEY, got {entry[:12]!r}… without ':'"
                    " (make one with `flowledger keys generate`)")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(f"key {key_id!r} is not valid base64") from None
            pairs.append((key_id.strip(), key))
        return cls(pairs, per_owner=per_owner)

    @classmethod
    def from_env(cls) -> Keyring | None:
        """The keyring ``FLOWLEDGER_ENCRYPTION_KEYS`` describes (None when unset);
        ``FLOWLEDGER_ENCRYPTION_PER_OWNER=1`` turns on per-owner keys."""
        text = os.environ.get(ENV_KEYS, "").strip()
        if not text:
            return None
        flag = os.environ.get(ENV_PER_OWNER, "").strip().lower()
        if flag not in ("", "0", "false", "no", "off", "1", "true", "yes", "on"):
            raise ConfigurationError(f"{ENV_PER_OWNER} is 1/true/yes/on or 0/false/no/off, "
                                     f"not {flag!r}")
        return cls.parse(text, per_owner=flag in ("1", "true", "yes", "on"))

    @staticmethod
    def generate(key_id: str | None = None) -> str:
        """A new ``id:BASE64KEY`` entry (a random 256-bit key), for the environment
        variable. Example: ``fl.Keyring.generate("2026-12")``"""
        key_id = key_id or f"k{secrets.token_hex(4)}"
        if not _KEY_ID.fullmatch(key_id):
            raise ConfigurationError(
                f"key id {key_id!r} must be 1-32 letters, digits, '.', '_' or '-'")
        return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"

    def key(self, key_id: str) -> bytes:
        """The key ``key_id`` (to hand it on, e.g. into a new keyring)."""
        return self._keys[key_id]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:  # never the keys themselves
        return (f"Keyring(key_ids={list(self._keys)!r}, primary={self.primary!r}, "
                f"per_owner={self.per_owner})")

    # -- sealing ---------------------------------------------------------------------
    def _cipher(self, key_id: str, owner_key: tuple[str, bytes] | None) -> AESGCM:
        slot = (key_id, None if owner_key is None else owner_key[0])
        cipher = self._ciphers.get(slot)
        if cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

            master = self._keys[key_id]
            if owner_key is None:
                cipher = AESGCM(master)
            else:
                from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
                from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

                derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=owner_key[1],
                               info=b"flowledger owner key " + owner_key[0].encode()
                               ).derive(master)
                cipher = AESGCM(derived)
            self._ciphers[slot] = cipher
        return cipher

    def seal(self, text: str, aad: bytes, owner_key: tuple[str, bytes] | None = None,
             key_id: str | None = None) -> str:
        """``text`` sealed for the record ``aad`` names, with the primary key (or
        ``key_id``) and, when given, the owner key ``(id, secret)``."""
        key_id = key_id or self.primary
        header = f"{PREFIX}{key_id}:{NO_OWNER_KEY if owner_key is None else owner_key[0]}:"
        nonce = os.urandom(NONCE)
        sealed = self._cipher(key_id, owner_key).encrypt(
            nonce, text.encode("utf-8", "surrogatepass"), header.encode() + b"|" + aad)
        return header + binascii.b2a_base64(nonce + sealed, newline=False).decode().translate(
            _URLSAFE)

    def open(self, text: str, aad: bytes, owner_secret: bytes | None = None) -> str:
        """The plaintext of sealed ``text``; raises ``PayloadKeyMissing`` when its key is
        not held, ``PayloadTampered`` when it does not authenticate for ``aad``."""
        envelope = envelope_of(text)
        if envelope is None:
            return text
        head, _, body = text.rpartition(":")
        self._require(envelope, owner_secret)
        owner_key = None if envelope.owner_key is None else (envelope.owner_key,
                                                             owner_secret or b"")
        try:
            raw = base64.urlsafe_b64decode(body)
            plain = self._cipher(envelope.key_id, owner_key).decrypt(
                raw[:NONCE], raw[NONCE:], (head + ":").encode() + b"|" + aad)
        except Exception:
            raise PayloadTampered(
                f"a payload sealed with key {envelope.key_id!r} does not authenticate for "
                f"{aad.decode(errors='replace')}: it was altered or moved from another "
                f"record — or key {envelope.key_id!r} in this keyring is not the key of "
                "that id that sealed it") from None
        return bytes(plain).decode("utf-8", "surrogatepass")

    def seal_bytes(self, content: bytes, aad: bytes,
                   owner_key: tuple[str, bytes] | None = None) -> bytes:
        """Artifact content sealed like text: a small header, then nonce|ciphertext."""
        header = (f"{self.primary}:{NO_OWNER_KEY if owner_key is None else owner_key[0]}"
                  ).encode()
        nonce = os.urandom(NONCE)
        sealed = self._cipher(self.primary, owner_key).encrypt(
            nonce, content, BLOB_MAGIC + header + b"|" + aad)
        return BLOB_MAGIC + header + b"\n" + nonce + sealed

    def open_bytes(self, content: bytes, aad: bytes, owner_secret: bytes | None = None) -> bytes:
        envelope = blob_envelope(content)
        if envelope is None:
            return content
        header, _, rest = content[len(BLOB_MAGIC):].partition(b"\n")
        self._require(envelope, owner_secret)
        owner_key = None if envelope.owner_key is None else (envelope.owner_key,
                                                             owner_secret or b"")
        try:
            plain = self._cipher(envelope.key_id, owner_key).decrypt(
                rest[:NONCE], rest[NONCE:], BLOB_MAGIC + header + b"|" + aad)
        except Exception:
            raise PayloadTampered(
                f"artifact content sealed with key {envelope.key_id!r} does not "
                f"authenticate for {aad.decode(errors='replace')}: it was altered or "
                "moved") from None
        return bytes(plain)

    def _require(self, envelope: Envelope, owner_secret: bytes | None) -> None:
        if envelope.key_id not in self._keys:
            raise PayloadKeyMissing(
                f"payload is encrypted with key {envelope.key_id!r}, which is not in this "
                f"process's keyring (it holds {', '.join(self._keys)}); add it to "
                f"{ENV_KEYS}", envelope.key_id)
        if envelope.owner_key is not None and owner_secret is None:
            raise PayloadKeyMissing(
                f"payload is encrypted with owner key {envelope.owner_key!r}, which was "
                "shredded: it can never be read again", envelope.key_id, shredded=True)


def is_sealed(text: object) -> bool:
    """Whether ``text`` is sealed payload text (cheap: a prefix test)."""
    return isinstance(text, str) and text.startswith(PREFIX)


def envelope_of(text: str) -> Envelope | None:
    """The key ids sealed text names (None: the text is not sealed)."""
    if not text.startswith(PREFIX):
        return None
    parts = text[len(PREFIX):].split(":", 2)
    if len(parts) != 3:
        raise PayloadTampered("sealed payload has a malformed header")
    return Envelope(parts[0], None if parts[1] == NO_OWNER_KEY else parts[1])


def blob_envelope(content: bytes) -> Envelope | None:
    """The key ids sealed artifact content names (None: not sealed)."""
    if not content.startswith(BLOB_MAGIC):
        return None
    header = content[len(BLOB_MAGIC):].partition(b"\n")[0].decode(errors="replace")
    key_id, _, owner_key = header.partition(":")
    return Envelope(key_id, None if owner_key in ("", NO_OWNER_KEY) else owner_key)


def record_aad(table: str, column: str, *identity: object) -> bytes:
    """The associated data naming one payload: table, column and the row's identity."""
    return "|".join((table, column, *map(_text, identity))).encode()


@functools.lru_cache(maxsize=4096)
def _text(part: object) -> str:
    # A run's steps name the same run id again and again: formatted once.
    return str(part)


class SealedPayload(str):
    """A payload this process cannot open, in place of its value where records are
    shown (inspect, exports, the API and UI): text saying it is encrypted, and with
    which key. ``key_id`` names the key; ``shredded`` tells that its owner key was
    erased (it can never be read again)."""

    key_id: str
    shredded: bool

    def __new__(cls, key_id: str, shredded: bool) -> SealedPayload:
        text = (f"[shredded: this payload's owner key was erased (master key {key_id!r})]"
                if shredded else
                f"[encrypted with key {key_id!r}, which this process's keyring lacks]")
        made = super().__new__(cls, text)
        made.key_id = key_id
        made.shredded = shredded
        return made


def placeholder(text: str, shredded: bool | None = None) -> SealedPayload:
    """What sealed ``text`` this process could not open shows instead."""
    envelope = envelope_of(text)
    assert envelope is not None
    gone = envelope.owner_key is not None if shredded is None else shredded
    return SealedPayload(envelope.key_id, gone)


def readable(text: str, what: str = "payload") -> str:
    """``text``, or ``PayloadKeyMissing`` when it is still sealed: a replay (resume,
    a result) never runs on a placeholder."""
    if not text.startswith(PREFIX):
        return text
    envelope = envelope_of(text)
    assert envelope is not None
    if envelope.owner_key is not None:
        raise PayloadKeyMissing(
            f"the recorded {what} is encrypted with owner key {envelope.owner_key!r} "
            f"(under master key {envelope.key_id!r}); it cannot be read: the owner key "
            f"was shredded, or master key {envelope.key_id!r} is not in this process's "
            f"keyring ({ENV_KEYS})", envelope.key_id, shredded=True)
    raise PayloadKeyMissing(
        f"the recorded {what} is encrypted with key {envelope.key_id!r}, which is not in "
        f"this process's keyring: set {ENV_KEYS} (or Ledger(encryption=...)) with it",
        envelope.key_id)


def error_data(text: str) -> dict[str, object]:
    """A recorded error (JSON text) as a dict; a still-sealed one says it is encrypted."""
    if text.startswith(PREFIX):
        return {"type": ENCRYPTED_ERROR, "message": str(placeholder(text)),
                "traceback": ""}
    import json  # noqa: PLC0415

    data = json.loads(text)
    return data if isinstance(data, dict) else {"message": str(data)}
