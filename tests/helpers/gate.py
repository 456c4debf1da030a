"""Gates that let a test hold a step open and release it: synchronisation without sleeps."""

from __future__ import annotations

import threading


class Gate:
    """A step waits on ``wait()``; the test learns it arrived and then ``open()``s it."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self._open = threading.Event()

    def wait(self, timeout: float = 30.0) -> None:
        self.arrived.set()
        if not self._open.wait(timeout):
            raise TimeoutError("gate was never opened")

    def open(self) -> None:
        self._open.set()
