"""Gates that let a test hold a step open and release it: synchronisation without sleeps."""

from __future__ import annotations

import threading
import time
from pathlib import Path


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


def wait_for_file(path: str, timeout: float = 60.0) -> None:
    """A gate across processes: return once the test has created ``path`` (a step in a
    server or worker process waits on it; there is no in-process event to share)."""
    deadline = time.monotonic() + timeout  # a broken test must not hang forever
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.01)
