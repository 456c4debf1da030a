"""uvicorn's HTTP protocol (httptools), with the two bounds uvicorn lacks: the time a
client may take to send a request, and the number of connections a process holds open.

uvicorn's keep-alive timeout is reset by every byte received, so a client trickling a
request's headers a byte at a time held a connection forever, and its concurrency limit
is only checked once headers are complete; a few hundred such clients exhausted a
server. Here a connection must deliver each whole request (headers and body) within
``request_timeout`` seconds of its opening or of its previous response (else ``408`` and
the connection is closed), and a connection over ``limit_concurrency`` is answered
``503`` and closed at once.

Example::

    config = ServerConfig(app, request_timeout=10, limit_concurrency=1000)
    uvicorn.Server(config).run()
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _answer(status: str, code: str, message: str, *extra: str) -> bytes:
    """A whole HTTP answer that closes the connection, in the API's error shape."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = [f"HTTP/1.1 {status}", "content-type: application/json", "connection: close",
            *extra, f"content-length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_TIMED_OUT = _answer("408 Request Timeout", "request_timeout",
                     "the request did not arrive in time")
_TOO_MANY = _answer("503 Service Unavailable", "unavailable",
                    "too many connections; retry shortly", "retry-after: 1")


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with ``request_timeout`` (seconds a client has to send a
    whole request); the protocol is :class:`BoundedHttpProtocol`."""

    def __init__(self, app: Any, *, request_timeout: float = 10.0, **options: Any) -> None:
        super().__init__(app, http=BoundedHttpProtocol, **options)
        self.request_timeout = request_timeout


class BoundedHttpProtocol(HttpToolsProtocol):
    """One connection: a deadline on receiving each request, a cap on connections."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        limit = self.config.limit_concurrency
        if limit is not None and len(self.connections) > limit:
            self.transport.write(_TOO_MANY)
            self.transport.close()
            return
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # its request has arrived already
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        timeout = getattr(self.config, "request_timeout", None)
        if timeout:
            self._deadline = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_TIMED_OUT)
        self.transport.close()
