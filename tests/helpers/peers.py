"""Real peer servers for the spec tests, each a subprocess on a free port: the LLM replay
server and the MCP tracker server shipped in examples/, and a small HTTP server with a
flaky and a rate-limited endpoint (``tests.helpers.flaky_http``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.server import free_port

EXAMPLES = ROOT / "examples"
START_WITHIN = 20.0


@contextmanager
def serving(argv: Sequence[str], port: int, output: Path,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends; return once its port accepts
    connections (the only readiness signal a foreign server gives)."""
    with output.open("wb") as sink:  # a file, not a pipe: a full pipe would block it
        process = subprocess.Popen(list(argv), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": CHILD_PATH, **(env or {})})
    try:
        deadline = time.monotonic() + START_WITHIN
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[1]} exited: {output.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[1]} did not listen within {START_WITHIN}s") \
                        from None
                time.sleep(0.02)  # polling a port: the server has no other signal
        yield process
    finally:
        process.kill()
        process.wait(10)


def lines(path: Path) -> list[dict[str, object]]:
    """A JSON-lines log written by a peer (empty when nothing was logged yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Peer:
    url: str
    log: Path

    def requests(self) -> list[dict[str, object]]:
        return lines(self.log)


@contextmanager
def llm_replay(folder: Path, answers: Mapping[str, object] | None = None) -> Iterator[Peer]:
    """The LLM replay server (OpenAI and Anthropic wire formats); ``url`` is its root."""
    port = free_port()
    argv = [sys.executable, str(EXAMPLES / "llm_replay_server.py"), "--port", str(port)]
    if answers is not None:
        (folder / "answers.json").write_text(json.dumps(answers))
        argv += ["--answers", str(folder / "answers.json")]
    log = folder / "llm-requests.jsonl"
    with serving(argv, port, folder / "llm-server.out", {"LLM_REPLAY_LOG": str(log)}):
        yield Peer(f"http://127.0.0.1:{port}", log)


@contextmanager
def mcp_tracker(folder: Path) -> Iterator[Peer]:
    """The MCP tracker server over streamable HTTP; ``url`` is its /mcp endpoint."""
    port = free_port()
    log = folder / "mcp-calls.jsonl"
    argv = [sys.executable, str(EXAMPLES / "mcp_tracker_server.py"), "--http", "--port",
            str(port)]
    with serving(argv, port, folder / "mcp-server.out",
                 {"TRACKER_DB": str(folder / "tracker.json"), "TRACKER_CALL_LOG": str(log)}):
        yield Peer(f"http://127.0.0.1:{port}/mcp", log)


@contextmanager
def flaky_http(folder: Path) -> Iterator[Peer]:
    """``tests.helpers.flaky_http``: issues, a flaky endpoint, a rate-limited one."""
    port = free_port()
    log = folder / "http-requests.jsonl"
    argv = [sys.executable, "-m", "tests.helpers.flaky_http", str(port), str(log)]
    with serving(argv, port, folder / "http-server.out"):
        yield Peer(f"http://127.0.0.1:{port}", log)
