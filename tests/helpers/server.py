"""A real ``flowledger serve`` process for the HTTP tests, and an HTTP client for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.workers import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    def __init__(self, db_url: str, *options: str,
                 app: str | None = "tests.helpers.http_app") -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        env = dict(os.environ, PYTHONPATH=CHILD_PATH)
        # A file, not a pipe: the server logs a line per run, and an unread pipe fills.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed with the object)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "--db", db_url, "serve",
             *(["--app", app] if app else []), "--port", str(self.port), *options],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        wait_until(self._healthy, timeout=60, what="the server to answer /healthz")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}: {self.output()}")
        try:
            return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def output(self) -> str:
        """What the server wrote to stderr so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout: float = 30) -> str:
        """SIGTERM, wait for the exit; the server's stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.output()


@contextmanager
def serving(db_url: str, *options: str,
            app: str | None = "tests.helpers.http_app") -> Iterator[ServerProcess]:
    server = ServerProcess(db_url, *options, app=app)
    try:
        yield server
    finally:
        server.stop()


def sse_events(response: httpx.Response, limit: int | None = None) -> list[dict[str, str]]:
    """Parse server-sent events from a streaming response (up to ``limit`` of them)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "event" in current:
                events.append(current)
                if limit is not None and len(events) >= limit:
                    return events
            current = {}
            continue
        if line.startswith(":"):
            continue  # a keep-alive comment
        name, _, value = line.partition(":")
        current[name] = value[1:] if value.startswith(" ") else value
    return events
