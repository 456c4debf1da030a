"""A real HTTP server on 127.0.0.1 (a thread of the test process) that records the
webhook deliveries it receives, for the webhook tests.

``answers`` are the status codes of the first requests (then 200); ``hold`` makes the
first request wait until it is set (a dispatcher killed mid-delivery). Tests wait on
``wait_for(predicate)`` (a condition variable), never on sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    started: float
    ended: float

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self, answers: list[int] | None = None, *,
                 hold: threading.Event | None = None,
                 retry_after: str | None = None, handle_s: float = 0.0) -> None:
        self.answers = list(answers or [])
        self.hold = hold
        self.retry_after = retry_after
        self.handle_s = handle_s  # time a request takes (to make overlaps likely)
        self.received: list[Received] = []
        self.in_flight: dict[str, int] = {}
        self.overlaps: list[str] = []  # webhook-ids received twice at the same time
        self.started: list[str] = []  # webhook-ids as their requests arrive
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                receiver.handle(self)

        return Handler

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        body = request.rfile.read(int(request.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in request.headers.items()}
        msg_id = headers.get("webhook-id", "")
        with self._changed:
            first = not self.started
            self.started.append(msg_id)
            self.in_flight[msg_id] = self.in_flight.get(msg_id, 0) + 1
            if self.in_flight[msg_id] > 1:
                self.overlaps.append(msg_id)
            status = self.answers.pop(0) if self.answers else 200
            self._changed.notify_all()
        if first and self.hold is not None:
            self.hold.wait(60)
        if self.handle_s:
            threading.Event().wait(self.handle_s)  # the receiver's own work, not a sync
        with self._changed:
            self.in_flight[msg_id] -= 1
            self.received.append(Received(request.path, headers, body, started,
                                          time.monotonic()))
            self._changed.notify_all()
        try:
            request.send_response(status)
            if self.retry_after is not None and status >= 400:
                request.send_header("Retry-After", self.retry_after)
            answer = b'{"ok": true}' if status < 400 else b"x" * 1000
            request.send_header("content-length", str(len(answer)))
            request.end_headers()
            request.wfile.write(answer)
        except OSError:
            pass  # the dispatcher is gone (killed mid-delivery)

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 30) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"receiver: condition not met in {timeout}s; "
                                     f"received {[r.id for r in self.received]}")

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            if self.hold is not None:
                self.hold.set()
            self._server.shutdown()
            self._server.server_close()
