"""A synchronous facade over the async MCP SDK, for steps that call MCP tools.

The workflow interpreter runs steps on several threads, while the MCP SDK is async and
its sessions must be entered and exited in one task. `McpSessions` bridges the two: one
background thread runs one event loop; each server gets one long-lived task that opens
its session on the first call, keeps it for every later call and closes it on `close()`.

    sessions = McpSessions({
        "tracker": {"command": [sys.executable, "examples/mcp_tracker_server.py"],
                    "env": {"TRACKER_DB": "/tmp/tracker.json"}},
        "search": {"url": "http://127.0.0.1:8765/mcp", "headers": {"Authorization": "..."}},
    })
    try:
        issue = sessions.call_tool("tracker", "get_issue", {"issue": 1}, timeout=30)
        print(issue["structured"]["title"], issue["text"])
    finally:
        sessions.close()

A stdio server's environment is the SDK's safe default (PATH, HOME, ...) plus ``env``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import httpx2
from mcp import Client, Implementation, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, TextContent

__all__ = ["McpSessions", "McpToolError"]

CLOSE_TIMEOUT = 5.0
"""Seconds `close()` waits for the sessions to shut down (it returns within about 7)."""

# The SDK's own defaults: a streamable HTTP server may hold a response stream open.
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class McpToolError(Exception):
    """A tool answered with isError, or its server could not be started or reached."""

    def __init__(self, message: str, *, server: str, tool: str) -> None:
        super().__init__(message)
        self.server = server
        self.tool = tool


class _StartFailed(Exception):
    """Why a server's session could not be opened; each waiting call reports it anew."""


@dataclass
class _Worker:
    """One server's session, owned by `task` (only ever touched on the loop thread)."""

    ready: asyncio.Future[Client]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


def _first_cause(exc: BaseException) -> BaseException:
    # anyio task groups wrap the one real failure (say a refused connection) in groups.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    cause = _first_cause(exc)
    if isinstance(cause, MCPError):
        return cause.message
    text = str(cause)
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


class McpSessions:
    """One lazily started MCP session per configured server, callable from any thread.

    ``servers`` maps a name to ``{"command": [argv...], "env": {...}, "cwd": ...}`` (stdio)
    or ``{"url": "http://host/mcp", "headers": {...}}`` (streamable HTTP).
    """

    def __init__(self, servers: Mapping[str, Mapping[str, Any]]) -> None:
        self._servers: dict[str, dict[str, Any]] = {}
        for name, config in servers.items():
            if ("command" in config) == ("url" in config):
                raise ValueError(f"MCP server {name!r} needs exactly one of 'command' or 'url'")
            command = config.get("command")
            if command is not None and (isinstance(command, str) or not command):
                raise ValueError(f"MCP server {name!r}: 'command' must be a non-empty argv list")
            self._servers[name] = dict(config)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._workers: dict[str, _Worker] = {}
        # Every session task, retired ones too, so close() waits for their servers to stop.
        self._serving: set[asyncio.Task[None]] = set()

    def __enter__(self) -> McpSessions:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def call_tool(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Call ``tool`` on ``server``; return ``{"text", "content", "structured"}``.

        Raises McpToolError (tool error, server unavailable), TimeoutError, ValueError
        (unknown server).
        """
        if server not in self._servers:
            known = ", ".join(repr(name) for name in sorted(self._servers)) or "none"
            raise ValueError(f"unknown MCP server {server!r}; known servers: {known}")
        # Submitting under the lock means close() cannot stop the loop between our check
        # and our submission, which would leave this call waiting forever.
        with self._lock:
            if self._closed:
                raise RuntimeError("McpSessions is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="flowledger-mcp", daemon=True
                )
                self._thread.start()
            future = asyncio.run_coroutine_threadsafe(
                self._call(server, tool, dict(arguments), timeout), self._loop
            )
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise _failure(server, tool, "cancelled, the sessions were closed") from None

    def close(self) -> None:
        """Close every started session (stopping stdio servers); safe to call again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(CLOSE_TIMEOUT + 1)
        except TimeoutError:
            pass  # a wedged server must not wedge the workflow; the daemon thread is dropped
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(1.0)
            if not thread.is_alive():
                loop.close()

    async def _call(
        self, server: str, tool: str, arguments: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        worker = self._worker(server)
        try:
            with anyio.fail_after(timeout):
                # Shielded: one caller timing out must not cancel the start others wait on.
                client = await asyncio.shield(worker.ready)
                result = await client.call_tool(tool, arguments)
        except _StartFailed as exc:
            raise _failure(server, tool, str(exc)) from exc.__cause__
        except TimeoutError:
            raise TimeoutError(
                f"MCP tool {tool!r} on server {server!r} did not answer within {timeout} s"
            ) from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise TimeoutError(f"MCP tool {tool!r} on {server!r}: {exc.message}") from exc
            if exc.code == CONNECTION_CLOSED:
                self._retire(server, worker)  # the next call starts a fresh session
            raise _failure(server, tool, exc.message) from exc
        except Exception as exc:
            self._retire(server, worker)  # a transport failure: start afresh next time
            raise _failure(server, tool, _describe(exc)) from _first_cause(exc)
        if result.is_error:
            text = _text(result) or "(no error text)"
            raise _failure(server, tool, text)
        return {
            "text": _text(result),
            # by_alias: the wire's camelCase names (mimeType), as other MCP clients show them.
            "content": [
                block.model_dump(mode="json", by_alias=True, exclude_none=True)
                for block in result.content
            ],
            "structured": result.structured_content,
        }

    def _worker(self, server: str) -> _Worker:
        # Runs on the loop thread with no await between lookup and insert, so concurrent
        # first calls still start the server once.
        worker = self._workers.get(server)
        if worker is None:
            loop = asyncio.get_running_loop()
            worker = _Worker(ready=loop.create_future())
            # Mark a start failure as seen even when every waiter has timed out.
            worker.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._workers[server] = worker
            worker.task = loop.create_task(self._serve(server, worker))
            self._serving.add(worker.task)
            worker.task.add_done_callback(self._serving.discard)
        return worker

    def _retire(self, server: str, worker: _Worker) -> None:
        if self._workers.get(server) is worker:
            del self._workers[server]
        worker.stop.set()

    async def _serve(self, server: str, worker: _Worker) -> None:
        config = self._servers[server]
        target = f"url {config['url']}" if "url" in config else f"command {config['command']!r}"
        try:
            async with AsyncExitStack() as stack:
                try:
                    client = await stack.enter_async_context(await self._client(config, stack))
                except Exception as exc:
                    failed = _StartFailed(f"could not start ({target}): {_describe(exc)}")
                    failed.__cause__ = _first_cause(exc)
                    worker.ready.set_exception(failed)
                    return
                worker.ready.set_result(client)
                await worker.stop.wait()
        except Exception:
            pass  # a session that broke while closing has nothing left to report to
        finally:
            # A failed or finished session is forgotten, so a later call can start afresh.
            self._retire(server, worker)
            if not worker.ready.done():
                worker.ready.set_exception(_StartFailed(f"the server ({target}) was stopped"))

    async def _client(self, config: Mapping[str, Any], stack: AsyncExitStack) -> Client:
        info = Implementation(name="flowledger", version="0")
        if "url" in config:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=dict(config.get("headers") or {}), timeout=_HTTP_TIMEOUT)
            )
            transport = streamable_http_client(str(config["url"]), http_client=http)
            return Client(transport, cache=None, client_info=info)
        argv = [str(part) for part in config["command"]]
        params = StdioServerParameters(
            command=argv[0],
            args=argv[1:],
            env={str(k): str(v) for k, v in (config.get("env") or {}).items()} or None,
            cwd=config.get("cwd"),
        )
        return Client(params, cache=None, client_info=info)

    async def _shutdown(self) -> None:
        for worker in self._workers.values():
            worker.stop.set()
            if worker.task is not None and not worker.ready.done():
                worker.task.cancel()  # still connecting: nothing to close gracefully
        if self._serving:
            await asyncio.wait(set(self._serving), timeout=CLOSE_TIMEOUT)
        # Calls still in flight (and a wedged session) would otherwise block threads forever.
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=0.5)


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def _failure(server: str, tool: str, detail: str) -> McpToolError:
    message = f"MCP tool {tool!r} on server {server!r} failed: {detail}"
    return McpToolError(message, server=server, tool=tool)
