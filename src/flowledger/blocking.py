"""Waits written once for synchronous and async callers: a generator yields how many
seconds to pause before it looks again, and returns the result; ``drive`` runs it with
``time.sleep``, ``drive_async`` with ``asyncio.sleep`` (durable sleeps and event waits,
waits on child runs).

Example::

    def ready_soon() -> Blocking[str]:
        while not done():
            yield 0.1
        return "ready"

    drive(ready_soon())  # or: await drive_async(ready_soon())
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TypeVar

from .stepcall import asyncio_module

T = TypeVar("T")
Blocking = Generator[float, None, T]


def drive(blocking: Blocking[T]) -> T:
    """Run a wait in this thread."""
    try:
        pause = next(blocking)
        while True:
            time.sleep(pause)  # what the wait asked for: it looks at the store again next
            pause = blocking.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def drive_async(blocking: Blocking[T]) -> T:
    """Run a wait in the event loop."""
    asyncio = asyncio_module()
    try:
        pause = next(blocking)
        while True:
            await asyncio.sleep(pause)
            pause = blocking.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


__all__ = ["Blocking", "drive", "drive_async"]
