"""Python functions the spec tests' ``python:`` steps call (``tests.helpers.spec_steps:…``).

State shared with the test lives here: the test process runs the spec in-process, so a
barrier or counter set up by the test is the one the steps see.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import flowledger as fl
from tests.helpers.gate import wait_for_file

calls: list[str] = []
lock = threading.Lock()
running = {"now": 0, "most": 0}  # items of a fan-out inside `paired` now, and at most
barrier = threading.Barrier(2, timeout=20)


def double(x: int) -> int:
    calls.append(f"double {x}")
    return x * 2


def together(name: str) -> str:
    """Returns only once another step is also inside ``together``: proves concurrency."""
    barrier.wait()
    return name


def paired(item: int) -> int:
    """Counts how many items run at once; each waits for a partner."""
    with lock:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
    try:
        barrier.wait()
    finally:
        with lock:
            running["now"] -= 1
    return item


def fail_unless(path: str) -> str:
    """Fails until the file exists (a test creates it before resuming)."""
    if not Path(path).exists():
        raise RuntimeError(f"{path} is missing")
    return "ok"


def log_line(path: str, text: str) -> str:
    """Appends a line to a side-effect log (what ran, how often) and returns it."""
    with open(path, "a") as sink:
        sink.write(text + "\n")
    return text


def maybe_block(path: str, text: str, gate: str, block: bool) -> str:
    """Logs; with ``block``, announces it is in flight (``gate``.arrived) and waits until
    the test creates ``gate`` (a test SIGKILLs the process first, then opens it)."""
    log_line(path, text)
    if block:
        Path(gate + ".arrived").write_text(str(os.getpid()))
        wait_for_file(gate)
    return text


def artifact(name: str, text: str) -> dict[str, Any]:
    info = fl.artifacts.save(name, text.encode(), media_type="text/plain")
    return {"key": info.key, "size": info.size}


async def double_async(x: int) -> int:
    """An async function a python step awaits on its own event loop."""
    return x * 2


@fl.step()
def doubled(x: int) -> int:
    return x * 2


@fl.workflow(name="spec-child-python")
def child_python(x: int) -> int:
    """A Python workflow a spec's workflow step starts as a child run."""
    return doubled(x) + 1


@fl.workflow(name="spec-child-async")
async def child_async(x: int) -> int:
    return x


def today() -> Any:
    """A value whose JSON form differs from itself: a date (a string once recorded)."""
    import datetime  # noqa: PLC0415

    return datetime.date(2026, 12, 2)
