"""A small issue-tracker MCP server, shipped for the offline spec examples and tests.

It is a real MCP server built on the official SDK's ``MCPServer``; its issues live in a
JSON file (``$TRACKER_DB``, by default ``tracker.json`` in the current directory), seeded
with a few issues the first time. Tools: ``get_issue``, ``add_label``, ``list_issues``,
``comment`` and ``server_info`` (the server's pid, so tests can tell one process from two).
When ``$TRACKER_CALL_LOG`` is set, every tool call appends one JSON line to that file.

    python examples/mcp_tracker_server.py                       # stdio
    python examples/mcp_tracker_server.py --http --port 8765    # http://127.0.0.1:8765/mcp
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

DB_VARIABLE = "TRACKER_DB"
CALL_LOG_VARIABLE = "TRACKER_CALL_LOG"

SEED_ISSUES: list[dict[str, Any]] = [
    {
        "id": 1,
        "title": "Retries ignore the backoff cap",
        "body": "A step retried ten times waits far longer than max_backoff allows.",
        "labels": ["bug"],
        "files": ["src/flowledger/executor.py", "src/flowledger/timeouts.py"],
        "comments": [],
    },
    {
        "id": 2,
        "title": "Document the retention settings",
        "body": "The docs never say how long finished runs are kept.",
        "labels": ["docs"],
        "files": ["docs/retention.md"],
        "comments": [],
    },
    {
        "id": 3,
        "title": "Schedules drift after a DST change",
        "body": "A daily 09:00 schedule fires at 10:00 after the clocks change.",
        "labels": [],
        "files": ["src/flowledger/schedules.py"],
        "comments": [],
    },
]

server = MCPServer("flowledger-tracker", log_level="WARNING")


def _db_path() -> Path:
    return Path(os.environ.get(DB_VARIABLE) or Path.cwd() / "tracker.json")


def _load() -> dict[str, Any]:
    path = _db_path()
    if not path.exists():
        _save({"issues": SEED_ISSUES})
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _save(data: dict[str, Any]) -> None:
    path = _db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Readers (tests, other tools) must never see a half-written file.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _log_call(tool: str, arguments: dict[str, Any]) -> None:
    log = os.environ.get(CALL_LOG_VARIABLE)
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid()}))
            handle.write("\n")


def _find(data: dict[str, Any], issue: int) -> dict[str, Any]:
    for entry in data["issues"]:
        if entry["id"] == issue:
            found: dict[str, Any] = entry
            return found
    # ToolError (not a plain exception) so the client sees this text, not a generic crash.
    raise ToolError(f"no issue #{issue}")


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in ("id", "title", "body", "labels", "files")}


@server.tool()
def get_issue(issue: int) -> dict[str, Any]:
    """One issue: its title, body, labels and the files it concerns."""
    _log_call("get_issue", {"issue": issue})
    return _public(_find(_load(), issue))


@server.tool()
def add_label(issue: int, label: str) -> dict[str, Any]:
    """Add a label to an issue; adding one it already has changes nothing."""
    _log_call("add_label", {"issue": issue, "label": label})
    data = _load()
    entry = _find(data, issue)
    if label not in entry["labels"]:
        entry["labels"].append(label)
        _save(data)
    return _public(entry)


@server.tool()
def list_issues() -> list[dict[str, Any]]:
    """Every issue's id, title and labels."""
    _log_call("list_issues", {})
    return [
        {"id": entry["id"], "title": entry["title"], "labels": entry["labels"]}
        for entry in _load()["issues"]
    ]


@server.tool()
def comment(issue: int, text: str) -> dict[str, Any]:
    """Add a comment to an issue."""
    _log_call("comment", {"issue": issue, "text": text})
    data = _load()
    entry = _find(data, issue)
    entry.setdefault("comments", []).append(text)
    _save(data)
    return {"issue": issue, "comments": len(entry["comments"])}


@server.tool()
def server_info() -> dict[str, Any]:
    """This server process's pid and database path."""
    _log_call("server_info", {})
    return {"pid": os.getpid(), "db": str(_db_path())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP, not stdio")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    args = parser.parse_args(argv)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.port, streamable_http_path="/mcp")
    else:
        server.run()


if __name__ == "__main__":
    main()
