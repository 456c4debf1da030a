"""Retention archives: whole run trees as gzip JSON Lines, written through fsspec and
verified before anything is deleted, and read back for restoring.

One object per batch: ``write_batch`` never appends to or replaces an object, so a
``{date}`` path that several batches or processes fill can never lose what an earlier
batch wrote. Each line is one run tree (every run with its steps, attempts, usage,
context, tags, artifacts with their content, step logs and events, payloads as the
serialized text the store keeps); the last line is the batch's trailer: how many trees
and runs the object holds and the sha256 of the lines before it.

Example::

    url = write_batch("file:///data/alice/2026-12-02.jsonl.gz", trees, blobs)
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import string
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from . import ids
from .artifacts import ArtifactStore
from .errors import ArchiveError, ConfigurationError
from .store import (
    NO_SEALING,
    ArchivedRun,
    ArtifactRow,
    AttemptRow,
    EventRow,
    NoSealing,
    RunRow,
    SpecRow,
    StepRow,
    UsageRow,
)

FORMAT = "flowledger.archive"
VERSION = 1
PLACEHOLDERS = ("owner", "date", "workflow")


def check_template(archive: str) -> str:
    """An archive URL template, checked: placeholders among ``{owner}``, ``{date}``,
    ``{workflow}``, and a protocol fsspec knows. Raises ConfigurationError."""
    if not isinstance(archive, str) or not archive.strip() or len(archive) > 2000:
        raise ConfigurationError("an archive is an fsspec URL of up to 2000 characters, "
                                 "e.g. file:///data/{owner}/{date}.jsonl.gz")
    try:
        parsed = list(string.Formatter().parse(archive))
    except ValueError as exc:
        raise ConfigurationError(f"archive {archive!r} is not a valid template ({exc}); "
                                 "write braces as {{ and }}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            raise ConfigurationError(
                f"archive {archive!r} has an unknown placeholder {{{field}}}: use "
                + ", ".join("{" + name + "}" for name in PLACEHOLDERS))
    protocol = archive.split("://", 1)[0] if "://" in archive else "file"
    from fsspec.registry import (  # noqa: PLC0415 (start-up time: fsspec is slow)
        known_implementations,
        registry,
    )

    if protocol not in known_implementations and protocol not in registry:
        raise ConfigurationError(f"archive {archive!r}: fsspec knows no protocol "
                                 f"{protocol!r} (e.g. file://, s3://, gcs://, memory://)")
    return archive


def render(template: str, owner: str, workflow: str, now_us: int) -> str:
    """The archive URL for one owner's and workflow's trees, purged on ``now_us``'s UTC
    date; each value is one path segment (a ``/`` in a name is escaped)."""
    date = datetime.fromtimestamp(now_us / 1_000_000, UTC).strftime("%Y-%m-%d")
    return template.format(owner=quote(owner, safe=""), workflow=quote(workflow, safe=""),
                           date=date)


def batch_url(url: str) -> str:
    """``url`` with a batch suffix, unique and time-ordered: ``2026-12-02.jsonl.gz``
    becomes ``2026-12-02.<batch>.jsonl.gz``."""
    batch = ids.new_run_id().hex
    for ending in (".jsonl.gz", ".json.gz", ".gz"):
        if url.endswith(ending):
            return f"{url[:-len(ending)]}.{batch}{ending}"
    return f"{url}.{batch}"


# -- encoding ------------------------------------------------------------------------
def _plain(row: Any) -> dict[str, Any]:
    return {name: str(value) if isinstance(value, uuid.UUID) else value
            for name, value in asdict(row).items()}


def encode_tree(runs: Sequence[ArchivedRun], blobs: ArtifactStore | None) -> str:
    """One archive line: a run tree (its top run first)."""
    entries = []
    for item in runs:
        run = _plain(item.run)
        run["tags"] = list(item.run.tags)
        artifacts = []
        for row in item.artifacts:
            entry = _plain(row)
            if blobs is not None:
                entry.update(_content(blobs, row))
            artifacts.append(entry)
        entries.append({
            "run": run, "steps": [_plain(s) for s in item.steps],
            "attempts": [_plain(a) for a in item.attempts],
            "usage": [_plain(u) for u in item.usage],
            "context": [list(c) for c in item.context], "artifacts": artifacts,
            "logs": [list(entry) for entry in item.logs],
            "events": [_plain(e) for e in item.events],
            "spec": None if item.spec is None else _plain(item.spec)})
    return json.dumps({"format": FORMAT, "version": VERSION, "root": str(runs[0].run.id),
                       "runs": entries}, separators=(",", ":"), sort_keys=True)


def _digest(lines: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _content(blobs: ArtifactStore, row: ArtifactRow) -> dict[str, Any]:
    """The artifact's content, base64; content already gone from the artifact store is
    noted (the reference is archived as it was). Other read errors raise ArchiveError:
    nothing is deleted."""
    try:
        return {"content": base64.b64encode(blobs.read(row.owner, row.digest)).decode()}
    except FileNotFoundError:
        return {"content_missing": True}
    except OSError as exc:
        raise ArchiveError(f"the content of artifact {row.key!r} of run {row.run_id} could "
                           f"not be read ({exc}): nothing was archived or deleted") from exc


def trailer(lines: Sequence[str], runs: int) -> str:
    """The batch's last line: counts and the sha256 of the lines before it."""
    return json.dumps({"format": FORMAT + ".batch", "version": VERSION, "trees": len(lines),
                       "runs": runs, "sha256": _digest(lines)}, sort_keys=True)


def _row(kind: type[Any], data: dict[str, Any]) -> Any:
    values = {}
    for item in fields(kind):
        if item.name not in data:
            continue
        value = data[item.name]
        if "uuid.UUID" in str(item.type) and value is not None:  # ids travel as text
            value = uuid.UUID(value)
        values[item.name] = value
    return kind(**values)


def decode_tree(line: str) -> list[ArchivedRun]:
    """The runs of one archive line (ValueError, KeyError, TypeError when malformed)."""
    data = json.loads(line)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a run tree of a flowledger retention archive")
    if data.get("version") != VERSION:
        raise ValueError(f"archive format version {data.get('version')!r} is not "
                         f"{VERSION}: restore it with the flowledger version that wrote it")
    found = []
    for entry in data["runs"]:
        run = dict(entry["run"])
        run["tags"] = tuple(run.get("tags", ()))
        found.append(ArchivedRun(
            _row(RunRow, run), [_row(StepRow, s) for s in entry["steps"]],
            [_row(AttemptRow, a) for a in entry["attempts"]],
            [_row(UsageRow, u) for u in entry["usage"]],
            [(c[0], c[1], int(c[2]), int(c[3])) for c in entry["context"]],
            [_row(ArtifactRow, a) for a in entry["artifacts"]],
            [(int(g[0]), int(g[1]), str(g[2]), int(g[3]), int(g[4])) for g in entry["logs"]],
            [_row(EventRow, e) for e in entry["events"]],
            None if entry.get("spec") is None else _row(SpecRow, entry["spec"])))
    return found


def contents(line: str) -> Iterator[tuple[str, str, bytes]]:
    """(owner, digest, content) of every artifact of an archive line."""
    for entry in json.loads(line)["runs"]:
        for artifact in entry["artifacts"]:
            if "content" in artifact:
                yield (artifact["owner"], artifact["digest"],
                       base64.b64decode(artifact["content"], validate=True))


# -- objects -------------------------------------------------------------------------
def _fs(url: str) -> tuple[Any, str]:
    import fsspec.core  # noqa: PLC0415 (start-up time)

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ArchiveError(f"cannot open archive {url!r}: {exc}") from None
    return fs, path


@dataclass(frozen=True)
class Written:
    """An archive object written and verified: its URL, trees and runs."""

    url: str
    trees: int
    runs: int


def write_batch(url: str, lines: Sequence[str], runs: int,
                sealing: NoSealing = NO_SEALING) -> Written:
    """Write ``lines`` (run trees) to a new object beside ``url`` (``batch_url``), then
    read it back and check the tree and run counts and the checksum. Raises ArchiveError
    (the object removed) when writing or verifying fails. With encryption on, the object
    is sealed whole with the primary key (``sealing``)."""
    target = batch_url(url)
    fs, path = _fs(target)
    while fs.exists(path):  # never replace an object (a batch id clash is near impossible)
        target = batch_url(url)
        fs, path = _fs(target)
    last = trailer(lines, runs)
    body = sealing.seal_archive(
        gzip.compress(("\n".join([*lines, last]) + "\n").encode(), mtime=0))
    try:
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "wb") as sink:
            sink.write(body)
        check = verify(sealing.open_archive(fs.cat_file(path)), target)
    except Exception as exc:  # any filesystem's failure: nothing may be deleted
        with contextlib.suppress(Exception):
            fs.rm_file(path)
        if isinstance(exc, ArchiveError):
            raise ArchiveError(f"archive {target!r} failed verification after it was "
                               f"written ({exc}): nothing was deleted") from exc
        raise ArchiveError(f"archive {target!r} could not be written: "
                           f"{type(exc).__name__}: {exc}; nothing was deleted") from exc
    if check != (len(lines), runs, json.loads(last)["sha256"]):
        with contextlib.suppress(Exception):
            fs.rm_file(path)
        raise ArchiveError(f"archive {target!r} read back differently from what was "
                           f"written ({check[0]} trees, {check[1]} runs instead of "
                           f"{len(lines)}, {runs}): nothing was deleted")
    return Written(target, len(lines), runs)


def remove(url: str) -> None:
    """Remove an object this process wrote (its runs were not deleted after all)."""
    fs, path = _fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def verify(raw: bytes, url: str) -> tuple[int, int, str]:
    """(trees, runs, sha256 of the tree lines) of an archive object's content, every
    batch trailer checked against the lines before it. Raises ArchiveError."""
    lines = list(_lines(raw, url))
    return len(lines), sum(runs for _, _, runs in lines), _digest([t for t, _, _ in lines])


def _bad(url: str, number: int, exc: BaseException) -> str:
    return (f"{url} line {number} is not a flowledger retention archive record "
            f"({type(exc).__name__}: {exc}); nothing was restored from it")


def _lines(raw: bytes, url: str) -> Iterator[tuple[str, int, int]]:
    """(tree line, line number, runs in it) of an object, each batch checked against its
    trailer (trailers left out). Raises ArchiveError."""
    try:
        text = gzip.decompress(raw).decode()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{url} is not a gzip JSON Lines retention archive "
                           f"({type(exc).__name__}: {exc}); nothing was restored") from None
    pending: list[str] = []
    runs = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ArchiveError(_bad(url, number, exc)) from None
        if isinstance(data, dict) and data.get("format") == FORMAT + ".batch":
            _check_trailer(data, pending, runs, url)
            pending, runs = [], 0
            continue
        if isinstance(data, dict) and "steps" in data and "workflow" in data:
            raise ArchiveError(f"{url} is an export of runs (flowledger purge --archive, "
                               "flowledger export), not a retention archive: its records "
                               "are for reading (fl.read_archive) and cannot be restored")
        try:
            count = len(decode_tree(line))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ArchiveError(_bad(url, number, exc)) from None
        pending.append(line)
        runs += count
        yield line, number, count
    if pending:
        raise ArchiveError(f"{url} ends without its batch trailer (cut short?): "
                           "nothing was restored from it")


def _check_trailer(data: dict[str, Any], lines: list[str], runs: int, url: str) -> None:
    try:
        expected = (int(data["trees"]), int(data["runs"]), str(data["sha256"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArchiveError(f"{url}: unreadable batch trailer ({exc})") from None
    if expected != (len(lines), runs, _digest(lines)):
        raise ArchiveError(f"{url}: a batch does not match its trailer's counts and "
                           "checksum (damaged or edited): nothing was restored from it")


def read_objects(url: str,
                 sealing: NoSealing = NO_SEALING) -> Iterator[tuple[str, list[str]]]:
    """Every archive object ``url`` names (a glob matches several): (object URL, its
    tree lines), each object verified whole before it is given. Raises ArchiveError."""
    import fsspec.core  # noqa: PLC0415 (start-up time)

    try:
        files = fsspec.core.open_files(url, "rb")
    except (ImportError, ValueError, OSError) as exc:
        raise ArchiveError(f"cannot open archive {url!r}: {exc}") from None
    if not files:
        raise ArchiveError(f"no archive at {url!r}")
    for item in files:
        name = str(item.full_name)
        try:
            with item as source:
                raw = source.read()
        except OSError as exc:
            raise ArchiveError(f"cannot read archive {name!r}: {exc}") from None
        yield name, [line for line, _, _ in _lines(sealing.open_archive(raw), name)]
