"""Artifacts: named blobs a run produces, content-addressed in an fsspec store.

Inside a step or workflow: ``fl.artifacts.save(key, data)``, ``get``, ``exists``,
``list``, ``delete``. From outside a run: ``ledger.artifacts(run_id)`` with the same
verbs. The database holds the reference (key, sha256 digest, size, media type, the
step that produced it, time); the content lives at ``<root>/<owner>/<digest>`` in any
fsspec filesystem (local folder by default, ``memory://``, ``s3://`` with s3fs, …).
Identical content of one owner is stored once; owners never share content, so one
owner can neither read nor probe another's.

Example::

    @fl.step()
    def render(report: dict) -> str:
        fl.artifacts.save("report.md", to_markdown(report))   # text/plain
        fl.artifacts.save("report.json", report)              # application/json
        return "report.md"
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from . import ids
from .encryption import blob_envelope
from .errors import ArtifactNotFound, ConfigurationError, LeaseLost, NotInRun, StoreError
from .models import ArtifactInfo, from_micros
from .runcontext import current_execution, step_of
from .store import NO_SEALING, ArtifactRow, NoSealing, SqlStore

__all__ = ["ArtifactInfo", "ArtifactStore", "RunArtifacts", "delete", "exists", "get",
           "list", "save"]

MAX_KEY = 512
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
# Step outputs over Ledger(offload_bytes=...) are stored as artifacts under this prefix and
# the step row holds OUTPUT_MARKER + key instead (JSON text never starts with "@").
OUTPUT_PREFIX = "_outputs/"
OUTPUT_MARKER = "@artifact:"
OUTPUT_MEDIA = "application/vnd.flowledger.payload"
TEMPORARY = ".tmp"  # content being written (local stores), renamed into place when whole
HEADER_BYTES = 80  # enough of stored content to read a sealed header (key ids)


def validate_key(key: str) -> str:
    """Keys are relative, slash-separated names: no ``..``, no absolute paths, no
    control characters, at most 512 characters."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise ConfigurationError(f"artifact keys are 1-{MAX_KEY} characters, not {key!r:.80}")
    if key.startswith(("/", "\\")) or (len(key) > 1 and key[1] == ":"):
        raise ConfigurationError(f"artifact key {key!r} must be relative, not absolute")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ConfigurationError(f"artifact key {key!r} contains control characters")
    if any(part in ("..", ".", "") for part in key.replace("\\", "/").split("/")):
        raise ConfigurationError(f"artifact key {key!r} may not contain empty, '.' or '..' "
                                 "parts")
    return key


def encode(data: Any, media_type: str | None) -> tuple[bytes, str]:
    """bytes as they are, text as UTF-8, anything else as JSON."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), media_type or BINARY
    if isinstance(data, str):
        return data.encode("utf-8"), media_type or TEXT
    try:
        return json.dumps(data, ensure_ascii=False).encode("utf-8"), media_type or JSON
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"artifact data must be bytes, text or JSON-serializable: "
                                 f"{exc}") from None


def decode(content: bytes, media_type: str) -> Any:
    """The inverse of ``encode``, chosen by media type."""
    kind = media_type.split(";", 1)[0].strip().lower()
    if kind == JSON or kind.endswith("+json"):
        return json.loads(content)
    if kind.startswith("text/"):
        return content.decode("utf-8")
    return content


class ArtifactStore:
    """Content-addressed blobs in an fsspec filesystem, namespaced by owner.

    The filesystem is opened on first use: most Ledgers never touch an artifact, and
    fsspec (with its filesystem drivers) is costly to import.
    """

    def __init__(self, url: str, sealing: NoSealing = NO_SEALING) -> None:
        self.url = url
        # Content is sealed before it is written and opened when read (encryption at
        # rest); the digest is the plaintext's, so identical content is still stored once.
        self.sealing = sealing
        self._opened: tuple[Any, str] | None = None

    def _open(self) -> tuple[Any, str]:
        if self._opened is None:
            import fsspec.core  # noqa: PLC0415 (start-up time: fsspec is slow to import)

            try:
                self._opened = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise ConfigurationError(f"cannot open artifact store {self.url!r}: "
                                         f"{exc}") from None
        return self._opened

    @property
    def fs(self) -> Any:
        return self._open()[0]

    @property
    def root(self) -> str:
        return self._open()[1]

    @property
    def local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def path(self, owner: str, digest: str) -> str:
        namespace = hashlib.sha256(owner.encode()).hexdigest()[:16]
        return f"{self.root.rstrip('/')}/{namespace}/{digest[:2]}/{digest}"

    def put(self, owner: str, content: bytes) -> str:
        """Store content once per owner; returns its sha256 digest."""
        digest = hashlib.sha256(content).hexdigest()
        path = self.path(owner, digest)
        # The same content stored already is reused only in the form this process would
        # write: not plaintext when it encrypts, not under a shredded or foreign key, not
        # sealed when it has no keyring (it could not read it back).
        if self.fs.exists(path) and self.sealing.reusable(owner, self.stored_head(
                owner, digest, HEADER_BYTES)):
            return digest
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.replace_stored(owner, digest, self.sealing.seal_blob(owner, digest, content))
        return digest

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove partial writes a killed process left (``*.tmp`` files older than
        ``older_than`` seconds: younger ones may still be being written). Returns how
        many were removed. Local stores only; others write objects atomically."""
        if not self.local or not self.fs.exists(self.root):
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for path in self.fs.glob(f"{self.root.rstrip('/')}/*/*/*{TEMPORARY}"):
            with contextlib.suppress(OSError):
                if os.path.getmtime(path) < cutoff:
                    self.fs.rm_file(path)
                    removed += 1
        return removed

    def read(self, owner: str, digest: str) -> bytes:
        content: bytes = self.fs.cat_file(self.path(owner, digest))
        return self.sealing.open_blob(owner, digest, content)

    def read_stored(self, owner: str, digest: str) -> bytes:
        """The content as stored (sealed, when encryption is on)."""
        content: bytes = self.fs.cat_file(self.path(owner, digest))
        return content

    def stored_head(self, owner: str, digest: str, size: int) -> bytes:
        """The first ``size`` bytes as stored (a sealed content's header names its key)."""
        with self.fs.open(self.path(owner, digest), "rb") as stream:
            content: bytes = stream.read(size)
            return content

    def replace_stored(self, owner: str, digest: str, stored: bytes) -> None:
        """Write stored content (new, or re-encrypted), atomically on local stores:
        readers never see a partly written file."""
        path = self.path(owner, digest)
        if not self.local:
            self.fs.pipe_file(path, stored)
            return
        temporary = f"{path}.{uuid.uuid4().hex}{TEMPORARY}"
        try:
            self.fs.pipe_file(temporary, stored)
            self.fs.mv(temporary, path)
        except BaseException:
            # A write that failed (a full disk) leaves nothing behind.
            with contextlib.suppress(OSError):
                self.fs.rm_file(temporary)
            raise

    def head(self, owner: str, digest: str, size: int) -> bytes:
        """The first ``size`` bytes of the content (a preview), reading no more."""
        if not self.sealing.active:
            with self.fs.open(self.path(owner, digest), "rb") as stream:
                content: bytes = stream.read(max(size, HEADER_BYTES))
            if blob_envelope(content) is None:
                return content[:size]
        return self.read(owner, digest)[:size]  # sealed content opens whole (or says why)

    def chunks(self, owner: str, digest: str, size: int = 64 * 1024) -> Iterator[bytes]:
        """The content in pieces, for streaming without holding it all in memory.
        Sealed content is opened before the first piece is given (a missing key raises
        here, not half-way through a response)."""
        if not self.sealing.active:
            stream = self.fs.open(self.path(owner, digest), "rb")
            first: bytes = stream.read(max(size, HEADER_BYTES))
            if blob_envelope(first) is None:
                return _pieces(stream, first, size)
            stream.close()
        content = self.read(owner, digest)
        return iter([content[start:start + size]
                     for start in range(0, len(content), size)] or [b""])

    def remove(self, owner: str, digest: str) -> bool:
        path = self.path(owner, digest)
        if not self.fs.exists(path):
            return False
        self.fs.rm_file(path)
        return True


def _pieces(stream: Any, first: bytes, size: int) -> Iterator[bytes]:
    """``first`` (already read) then the rest of ``stream``, in pieces; closes it."""
    with stream:
        for start in range(0, len(first), size):
            yield first[start:start + size]
        while piece := stream.read(size):
            yield piece


class RunArtifacts:
    """The artifacts of one run; what ``ledger.artifacts(run_id)`` and
    ``fl.artifacts`` (inside a run) act on."""

    def __init__(self, store: SqlStore, blobs: ArtifactStore, run_id: uuid.UUID, owner: str,
                 token: str | None = None, position: int = 0) -> None:
        self._store = store
        self._blobs = blobs
        self.run_id = run_id
        self.owner = owner
        self._token = token
        self._position = position

    def save(self, key: str, data: Any, media_type: str | None = None) -> ArtifactInfo:
        """Store ``data`` (bytes, text or JSON) under ``key``; replaces an earlier one."""
        validate_key(key)
        content, kind = encode(data, media_type)
        try:
            replaced = [r for r in self._store.artifacts_of(self.run_id, key) if r.key == key]
        except StoreError:  # best-effort mode during an outage: the save itself is spooled
            replaced = []
        digest = self._blobs.put(self.owner, content)
        row = ArtifactRow(self.run_id, key, self.owner, digest, len(content), kind,
                          self._position, ids.now_us())
        if not self._store.save_artifact(self._token, row):
            raise LeaseLost(f"run {self.run_id} is no longer held by this execution")
        self._collect({(old.owner, old.digest) for old in replaced if old.digest != digest})
        return artifact_info(row)

    def _collect(self, contents: set[tuple[str, str]]) -> None:
        """Remove content no artifact references any more."""
        if not contents:
            return
        try:
            orphans = self._store.unreferenced(contents)
        except StoreError:
            return  # cannot tell while the store is down; purge collects it later
        for owner, digest in orphans:
            self._blobs.remove(owner, digest)

    def _row(self, key: str) -> ArtifactRow:
        for row in self._store.artifacts_of(self.run_id, validate_key(key)):
            if row.key == key:
                return row
        raise ArtifactNotFound(f"run {self.run_id} has no artifact {key!r}")

    def info(self, key: str) -> ArtifactInfo:
        return artifact_info(self._row(key))

    def read_bytes(self, key: str) -> bytes:
        row = self._row(key)
        return self._blobs.read(row.owner, row.digest)

    def stream(self, key: str) -> tuple[ArtifactInfo, Iterator[bytes]]:
        """The artifact's reference and its content in 64 KiB pieces (read lazily).

        Example: ``info, pieces = ledger.artifacts(run_id).stream("report.pdf")``
        """
        row = self._row(key)
        return artifact_info(row), self._blobs.chunks(row.owner, row.digest)

    def get(self, key: str) -> Any:
        """The content, as saved: bytes, text (``text/*``) or JSON (``application/json``)."""
        row = self._row(key)
        return decode(self._blobs.read(row.owner, row.digest), row.media_type)

    def exists(self, key: str) -> bool:
        return any(r.key == key for r in self._store.artifacts_of(self.run_id,
                                                                  validate_key(key)))

    def list(self, prefix: str = "") -> builtins.list[ArtifactInfo]:
        """References of this run's artifacts whose keys start with ``prefix``."""
        return [artifact_info(row) for row in self._store.artifacts_of(self.run_id, prefix)]

    def delete(self, key: str) -> bool:
        """Remove the reference; content no other artifact uses is deleted too."""
        row = self._store.delete_artifact(self.run_id, validate_key(key))
        if row is None:
            return False
        self._collect({(row.owner, row.digest)})
        return True

    def __iter__(self) -> Iterator[ArtifactInfo]:
        return iter(self.list())


def artifact_info(row: ArtifactRow) -> ArtifactInfo:
    """A stored artifact reference as the record users see."""
    return ArtifactInfo(str(row.run_id), row.key, row.digest, row.size, row.media_type,
                        row.position, from_micros(row.created_at))


def _here() -> RunArtifacts:
    execution = current_execution("fl.artifacts")
    if execution.runtime.artifacts is None:
        raise NotInRun("fl.artifacts is only available inside a running workflow")
    step = step_of(execution)
    position = step.position if step is not None else 0
    return RunArtifacts(execution.runtime.store, execution.runtime.artifacts, execution.run_id,
                        execution.owner, execution.token, position)


def save(key: str, data: Any, media_type: str | None = None) -> ArtifactInfo:
    """Save an artifact of the current run (bytes, text or JSON)."""
    return _here().save(key, data, media_type)


def get(key: str) -> Any:
    """An artifact of the current run, decoded by media type."""
    return _here().get(key)


def exists(key: str) -> bool:
    """Whether the current run has an artifact under ``key``."""
    return _here().exists(key)


def list(prefix: str = "") -> builtins.list[ArtifactInfo]:
    """The current run's artifacts whose keys start with ``prefix``."""
    return _here().list(prefix)


def delete(key: str) -> bool:
    """Delete an artifact of the current run."""
    return _here().delete(key)
