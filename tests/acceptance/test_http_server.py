"""The server itself, as a real ``flowledger serve`` process: several processes on one
port, compressed answers, and the bounds that keep slow or numerous clients from
exhausting it."""

from __future__ import annotations

import gzip
import os
import socket
import time
from pathlib import Path

import httpx

import flowledger as fl
from tests.helpers import http_app
from tests.helpers.server import ServerProcess, serving, sse_events
from tests.helpers.workers import wait_until

SQLITE = "sqlite:///{}"


def _pid(process: str) -> int:
    return int(process.split(":")[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_several_processes_share_the_port_and_stop_together(db_url: str) -> None:
    server = ServerProcess(db_url, "--processes", "2")
    try:
        seen: set[str] = set()
        for _ in range(400):  # a new connection each time: the kernel picks the process
            answer = httpx.get(f"{server.base}/readyz", timeout=10)
            assert answer.status_code == 200, answer.text
            seen.add(answer.json()["process"])
            if len(seen) == 2:
                break
        assert len(seen) == 2, f"only {seen} answered 400 requests"
        pids = {_pid(process) for process in seen}
        assert server.proc.pid not in pids  # the supervisor only supervises
    finally:
        output = server.stop()
    assert server.proc.returncode == 0, output
    assert not [pid for pid in pids if _alive(pid)], "a server process outlived SIGTERM"


def test_large_answers_are_compressed_and_small_ones_are_not(tmp_path: Path) -> None:
    url = SQLITE.format(tmp_path / "gzip.db")
    with fl.Ledger(url) as ledger:
        token = ledger.create_token("alice").secret
        handles = [ledger.submit(http_app.report, n, owner="alice") for n in range(30)]
        ledger.cancel(handles[0].id)  # a run whose event stream ends at once
    with serving(url) as server:
        headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
        with httpx.Client(base_url=server.base, headers=headers) as api:
            listing = api.get("/runs", params={"limit": 30})
            assert listing.status_code == 200
            assert listing.headers["content-encoding"] == "gzip"
            assert len(listing.json()["runs"]) == 30  # httpx decoded it
            health = api.get("/healthz")
            assert "content-encoding" not in health.headers
            # and a client that does not accept gzip gets plain JSON
            raw = httpx.get(f"{server.base}/runs", params={"limit": 30},
                            headers={"Authorization": f"Bearer {token}",
                                     "Accept-Encoding": "identity"})
            assert "content-encoding" not in raw.headers
            assert raw.json() == listing.json()
            with api.stream("GET", "/runs", params={"limit": 30}) as streamed:
                compressed = b"".join(streamed.iter_raw())
            assert len(compressed) < len(raw.content)
            assert gzip.decompress(compressed) == raw.content
            # an event stream is never compressed (it would be held back in buffers)
            with api.stream("GET", f"/runs/{handles[0].id}/events") as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                assert "content-encoding" not in events.headers
                assert events.headers["x-accel-buffering"] == "no"
                assert [e["event"] for e in sse_events(events)] == ["run.cancelled"]


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_too_slow_to_send_its_request_is_answered_408(tmp_path: Path) -> None:
    url = SQLITE.format(tmp_path / "slow.db")
    fl.Ledger(url).close()
    with serving(url, "--request-timeout", "1s") as server:
        # half a request line, then nothing: the server answers 408 and closes
        started = time.monotonic()
        with _connect(server) as idle:
            idle.sendall(b"GET /api/v1/healthz HT")
            answer = _read_all(idle)  # returns once the server closes the connection
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"request_timeout"' in answer
        assert time.monotonic() - started < 20
        # a client trickling its headers a byte at a time is cut off too
        request = b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 500
        closed = False
        with _connect(server) as trickle:
            trickle.settimeout(0.2)
            for byte in request:
                try:
                    trickle.sendall(bytes([byte]))
                    if trickle.recv(4096) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue  # nothing from the server yet: send the next byte
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                else:  # the 408 arrived; the close follows
                    closed = True
                    break
        assert closed, "the server kept a trickling connection open for 100 s"
        # and a prompt client is served as usual, also on a kept-alive connection
        with httpx.Client(base_url=server.base) as api:
            assert api.get("/healthz").status_code == 200
            assert api.get("/healthz").status_code == 200


def test_connections_over_the_limit_are_refused_with_503(tmp_path: Path) -> None:
    url = SQLITE.format(tmp_path / "many.db")
    fl.Ledger(url).close()
    with serving(url, "--max-connections", "4", "--request-timeout", "30s") as server:
        held = [_connect(server) for _ in range(4)]
        try:
            with _connect(server) as extra:
                answer = _read_all(extra)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert b"too many connections" in answer
        finally:
            for conn in held:
                conn.close()
        # once the server has seen them go, new clients are served again
        wait_until(lambda: httpx.get(f"{server.base}/healthz").status_code == 200,
                   timeout=30, what="the server to accept connections again")
        with httpx.Client(base_url=server.base) as api:
            for _ in range(3):
                assert api.get("/healthz").status_code == 200
