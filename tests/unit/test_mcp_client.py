"""McpSessions against the real example MCP server (examples/mcp_tracker_server.py).

Over stdio the sessions start the server themselves; over streamable HTTP the test starts
it as a subprocess on a free port. The server's call log (one JSON line per tool call,
with the serving process's pid) shows which process answered each call.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowledger.specs.mcp_client import McpSessions, McpToolError

SERVER = Path(__file__).resolve().parents[2] / "examples" / "mcp_tracker_server.py"
DEADLINE = 10.0


def _stdio(tmp_path: Path) -> dict[str, Any]:
    return {
        "command": [sys.executable, str(SERVER)],
        "env": {
            "TRACKER_DB": str(tmp_path / "tracker.json"),
            "TRACKER_CALL_LOG": str(tmp_path / "calls.jsonl"),
        },
    }


def _calls(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _labels(tmp_path: Path, issue: int) -> list[str]:
    data = json.loads((tmp_path / "tracker.json").read_text(encoding="utf-8"))
    return next(entry["labels"] for entry in data["issues"] if entry["id"] == issue)


def _wait_until_gone(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"server process {pid} still exists after close()"
        time.sleep(0.02)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[McpSessions]:
    sessions = McpSessions({"tracker": _stdio(tmp_path)})
    yield sessions
    sessions.close()


def test_stdio_get_issue_add_label_and_one_process(sessions: McpSessions, tmp_path: Path) -> None:
    issue = sessions.call_tool("tracker", "get_issue", {"issue": 1})
    assert issue["structured"]["title"] == "Retries ignore the backoff cap"
    assert issue["structured"]["labels"] == ["bug"]
    assert issue["structured"]["files"] == [
        "src/flowledger/executor.py",
        "src/flowledger/timeouts.py",
    ]
    assert json.loads(issue["text"]) == issue["structured"]
    assert issue["content"] == [{"type": "text", "text": issue["text"]}]
    json.dumps(issue)  # the result is stored in the ledger, so it must serialise

    assert _labels(tmp_path, 3) == []
    for _ in range(2):
        labelled = sessions.call_tool("tracker", "add_label", {"issue": 3, "label": "bug"})
        assert labelled["structured"]["labels"] == ["bug"]
    assert _labels(tmp_path, 3) == ["bug"]

    listed = sessions.call_tool("tracker", "list_issues", {})
    assert [entry["id"] for entry in listed["structured"]["result"]] == [1, 2, 3]
    assert len(listed["content"]) == 3
    assert listed["text"].count("\n{") == 2

    pid = sessions.call_tool("tracker", "server_info", {})["structured"]["pid"]
    calls = _calls(tmp_path)
    assert [call["tool"] for call in calls] == [
        "get_issue",
        "add_label",
        "add_label",
        "list_issues",
        "server_info",
    ]
    assert {call["pid"] for call in calls} == {pid}


def test_tool_error_names_tool_and_text_and_session_survives(
    sessions: McpSessions, tmp_path: Path
) -> None:
    with pytest.raises(McpToolError) as raised:
        sessions.call_tool("tracker", "get_issue", {"issue": 99})
    message = str(raised.value)
    assert "'get_issue'" in message
    assert "'tracker'" in message
    assert "no issue #99" in message
    assert (raised.value.server, raised.value.tool) == ("tracker", "get_issue")

    assert sessions.call_tool("tracker", "get_issue", {"issue": 2})["structured"]["id"] == 2
    assert len({call["pid"] for call in _calls(tmp_path)}) == 1


def test_unknown_server_is_a_value_error(sessions: McpSessions) -> None:
    with pytest.raises(ValueError, match=r"'nope'.*'tracker'"):
        sessions.call_tool("nope", "get_issue", {"issue": 1})


def test_concurrent_calls_share_one_session(sessions: McpSessions, tmp_path: Path) -> None:
    barrier = threading.Barrier(4)
    results: dict[int, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def call(index: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE)
            results[index] = sessions.call_tool("tracker", "get_issue", {"issue": 1 + index % 3})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not errors
    assert [results[index]["structured"]["id"] for index in range(4)] == [1, 2, 3, 1]
    calls = _calls(tmp_path)
    assert len(calls) == 4
    assert len({call["pid"] for call in calls}) == 1


def test_close_stops_the_stdio_server(tmp_path: Path) -> None:
    sessions = McpSessions({"tracker": _stdio(tmp_path)})
    pid = sessions.call_tool("tracker", "server_info", {})["structured"]["pid"]
    assert pid != os.getpid()
    os.kill(pid, 0)  # alive while the session is open
    sessions.close()
    _wait_until_gone(pid)
    sessions.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sessions.call_tool("tracker", "server_info", {})


def test_missing_command_is_a_readable_tool_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-mcp-server")
    with (
        McpSessions({"ghost": {"command": [missing, "--stdio"]}}) as sessions,
        pytest.raises(McpToolError) as raised,
    ):
        sessions.call_tool("ghost", "anything", {})
    message = str(raised.value)
    assert "'ghost'" in message
    assert "'anything'" in message
    assert "could not start" in message
    assert "FileNotFoundError" in message
    assert missing in message
    assert "ExceptionGroup" not in message


def test_a_refused_url_is_a_readable_tool_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/mcp"  # nothing listens there
    with McpSessions({"gone": {"url": url}}) as sessions, pytest.raises(McpToolError) as raised:
        sessions.call_tool("gone", "get_issue", {"issue": 1}, timeout=DEADLINE)
    message = str(raised.value)
    assert "'gone'" in message
    assert "'get_issue'" in message
    assert url in message
    assert "ConnectError" in message
    assert "ExceptionGroup" not in message


def test_a_dead_server_fails_one_call_then_is_restarted(
    sessions: McpSessions, tmp_path: Path
) -> None:
    pid = sessions.call_tool("tracker", "server_info", {})["structured"]["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait_until_gone(pid)
    with pytest.raises(McpToolError, match=r"'server_info' on server 'tracker'"):
        sessions.call_tool("tracker", "server_info", {}, timeout=DEADLINE)
    restarted = sessions.call_tool("tracker", "server_info", {}, timeout=DEADLINE)
    assert restarted["structured"]["pid"] != pid


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    # Reads the client's messages until stdin closes and never replies.
    silent = {"command": [sys.executable, "-c", "import sys; sys.stdin.read()"]}
    with McpSessions({"silent": silent}) as sessions:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"'ping'.*'silent'.*0\.5 s"):
            sessions.call_tool("silent", "ping", {}, timeout=0.5)
        assert time.monotonic() - started < DEADLINE


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {**os.environ, "TRACKER_DB": str(tmp_path / "tracker.json")}
    env["TRACKER_CALL_LOG"] = str(tmp_path / "calls.jsonl")
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert process.poll() is None, "the HTTP tracker server exited early"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP tracker server never listened"
                time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.kill()
        process.wait(DEADLINE)


def test_streamable_http(http_server: tuple[str, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    url, process = http_server
    with McpSessions({"tracker": {"url": url, "headers": {"X-Test": "1"}}}) as sessions:
        issue = sessions.call_tool("tracker", "get_issue", {"issue": 2}, timeout=DEADLINE)
        assert issue["structured"]["title"] == "Document the retention settings"
        assert json.loads(issue["text"])["labels"] == ["docs"]

        sessions.call_tool("tracker", "add_label", {"issue": 2, "label": "good first issue"})
        assert _labels(tmp_path, 2) == ["docs", "good first issue"]

        with pytest.raises(McpToolError, match=r"'comment'.*no issue #7"):
            sessions.call_tool("tracker", "comment", {"issue": 7, "text": "hello"})

        assert sessions.call_tool("tracker", "server_info", {})["structured"]["pid"] == process.pid
    assert [call["tool"] for call in _calls(tmp_path)] == [
        "get_issue",
        "add_label",
        "comment",
        "server_info",
    ]
