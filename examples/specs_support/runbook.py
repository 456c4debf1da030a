"""Steps of ``examples/specs/runbook.yaml``: inspect a directory and file a report.

``count_by_extension`` and ``checksums`` walk the directory (they run concurrently with
the spec's shell steps); ``build_report`` combines every branch's findings and
``save_report`` stores the report and the checksum manifest as artifacts of the run
(``fl.artifacts.save``), so they can be read back later with ``flowledger artifacts get``
or ``ledger.artifacts(run_id)``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flowledger as fl

SKIPPED_DIRECTORIES = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache",
                                 ".ruff_cache", ".pytest_cache", ".venv", "node_modules"})
CHUNK = 1024 * 1024


def _files(path: str) -> Iterator[Path]:
    """Regular files under ``path`` in a stable order, skipping tool and VCS folders and
    never following symbolic links."""
    root = Path(path)
    if not root.is_dir():
        raise fl.NonRetryable(f"{path} is not a directory")
    for folder, directories, names in os.walk(root):
        directories[:] = sorted(d for d in directories if d not in SKIPPED_DIRECTORIES)
        for name in sorted(names):
            file = Path(folder) / name
            if file.is_file() and not file.is_symlink():
                yield file


def count_by_extension(path: str, top: int = 8) -> dict[str, Any]:
    """Files and bytes per extension (``(none)`` for files without one), the ``top``
    extensions by file count first."""
    counts: dict[str, dict[str, int]] = {}
    for file in _files(path):
        extension = file.suffix.lower() or "(none)"
        entry = counts.setdefault(extension, {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += file.stat().st_size
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1]["files"], pair[0]))
    return {"files": sum(entry["files"] for entry in counts.values()),
            "extensions": len(counts),
            "top": [{"extension": extension, **entry} for extension, entry in ranked[:top]]}


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(path: str, top: int = 5) -> dict[str, Any]:
    """The SHA-256 of every file (a ``sha256sum``-style manifest, paths relative to
    ``path``), one digest of the whole tree (of the manifest), and the largest files."""
    root = Path(path)
    lines: list[str] = []
    sizes: list[tuple[int, str]] = []
    for file in _files(path):
        relative = file.relative_to(root).as_posix()
        lines.append(f"{_sha256(file)}  {relative}")
        sizes.append((file.stat().st_size, relative))
    manifest = "\n".join(lines) + ("\n" if lines else "")
    sizes.sort(key=lambda pair: (-pair[0], pair[1]))
    return {"files": len(lines), "bytes": sum(size for size, _ in sizes),
            "tree_sha256": hashlib.sha256(manifest.encode()).hexdigest(),
            "largest": [{"path": name, "bytes": size} for size, name in sizes[:top]],
            "manifest": manifest}


def _kib(du_stdout: str) -> int:
    """The size in KiB from ``du -sk`` output (``1234<TAB>path``)."""
    first = du_stdout.split()
    if not first or not first[0].isdigit():
        raise ValueError(f"unexpected du output: {du_stdout[:200]!r}")
    return int(first[0])


def build_report(path: str, du_stdout: str, file_types: dict[str, Any],
                 sums: dict[str, Any], uname: str,
                 python_lines: dict[str, Any]) -> dict[str, Any]:
    """Combine the branches' findings into one report: its figures and its Markdown.
    ``uname`` is the output of ``uname -snrm`` (system, node, release, machine)."""
    disk_kib = _kib(du_stdout)
    system, node, release, machine = ([*uname.split(), "?", "?", "?", "?"])[:4]
    host = {"system": system, "node": node, "release": release, "machine": machine}
    figures = {"path": path, "disk_kib": disk_kib, "files": file_types["files"],
               "extensions": file_types["extensions"], "bytes": sums["bytes"],
               "tree_sha256": sums["tree_sha256"], "python_files": python_lines["files"],
               "python_lines": python_lines["lines"], "host": host}
    rows = "\n".join(f"| {entry['extension']} | {entry['files']} | {entry['bytes']} |"
                     for entry in file_types["top"])
    largest = "\n".join(f"| {entry['path']} | {entry['bytes']} |"
                        for entry in sums["largest"])
    markdown = (
        f"# Runbook report: {path}\n\n"
        f"- host: {node} ({system} {release}, {machine})\n"
        f"- disk usage (du -sk): {disk_kib} KiB\n"
        f"- files: {file_types['files']} in {file_types['extensions']} extensions, "
        f"{sums['bytes']} bytes\n"
        f"- Python: {python_lines['files']} files, {python_lines['lines']} lines\n"
        f"- tree checksum (sha256 of the manifest): `{sums['tree_sha256']}`\n\n"
        f"| extension | files | bytes |\n|---|---|---|\n{rows}\n\n"
        f"| largest files | bytes |\n|---|---|\n{largest}\n")
    return {"figures": figures, "markdown": markdown}


def save_report(report: dict[str, Any], manifest: str) -> list[dict[str, Any]]:
    """Save the report (Markdown and JSON) and the checksum manifest as artifacts of the
    current run; returns each artifact's key, digest, size and media type."""
    saved = [
        fl.artifacts.save("runbook/report.md", report["markdown"], "text/markdown"),
        fl.artifacts.save("runbook/report.json", report["figures"]),
        fl.artifacts.save("runbook/checksums.sha256", manifest),
    ]
    return [{"key": info.key, "digest": info.digest, "size": info.size,
             "media_type": info.media_type} for info in saved]
