"""Workflows executed by the worker processes of the queue tests.

Each step appends ``B|E run position pid`` lines to the file named by
``FLOWLEDGER_SIDE_LOG`` (one O_APPEND write per line, so lines from several processes
never interleave): the side-effect log the tests check execution against.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from pydantic import BaseModel

import flowledger as fl


def _log(kind: str, position: int) -> None:
    path = os.environ.get("FLOWLEDGER_SIDE_LOG")
    if not path:
        return
    line = f"{kind} {fl.current_run_id()} {position} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@fl.step
def work(n: int, position: int, seconds: float = 0.0) -> int:
    _log("B", position)
    if seconds:
        time.sleep(seconds)  # the work itself: a step that takes time
    _log("E", position)
    return n + position


@fl.workflow(name="five_steps")
def five_steps(n: int, seconds: float = 0.0) -> int:
    total = n
    for position in range(1, 6):
        total = work(total, position, seconds)
    return total


@fl.workflow(name="one_step")
def one_step(n: int, seconds: float = 0.0) -> int:
    return work(n, 1, seconds)


@fl.step
def wait_for(path: str) -> str:
    """Blocks until the test creates ``path``: the gate a paused or stopping worker is
    held at. The bound keeps a broken test from hanging forever."""
    _log("B", 2)
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.01)
    _log("E", 2)
    return os.environ.get("FLOWLEDGER_WORKER_NAME", str(os.getpid()))


@fl.workflow(name="gated")
def gated(gate: str) -> list[object]:
    first = work(0, 1)
    who = wait_for(gate)
    last = work(first, 3)
    return [first, who, last]



@fl.workflow(name="napper")
def napper(seconds: float) -> int:
    """A step, a durable sleep, a step: what the sleep tests execute on workers."""
    first = work(0, 1)
    fl.sleep(seconds)
    return work(first, 3)


@fl.workflow(name="three_events")
def three_events() -> list[object]:
    """Waits for three events in turn, with a step between the second and the third.
    The waits are bounded (10 min), so a worker whose ``--suspend-after`` is longer
    blocks in them holding the run (an unbounded wait always suspends)."""
    work(0, 1)
    got: list[object] = [fl.wait_for_event("first", 600), fl.wait_for_event("second", 600)]
    work(0, 4)
    got.append(fl.wait_for_event("third", 600))
    return got


class Approval(BaseModel):
    approved: bool
    by: str
    note: str = ""


@fl.workflow(name="approval")
def approval() -> dict[str, object]:
    """The approval pattern: a step, then a wait for ``approve`` with a model."""
    work(0, 1)
    decision = fl.wait_for_event("approve", model=Approval)
    return decision.model_dump()


@fl.step(retries=1, backoff=0)
def talk(word: str) -> str:
    attempt = fl.current_step().attempt
    logging.getLogger("worker_app").warning("saying %s, attempt %d", word, attempt)
    print(f"printed {word}")
    if attempt == 1:
        raise ConnectionError("first attempt fails")
    return word


@fl.workflow(name="talker")
def talker(word: str) -> str:
    return talk(word)


def _log_time(kind: str, position: int) -> None:
    """``kind run position pid unix-time``: when a step body started (rate-limit tests)."""
    path = os.environ.get("FLOWLEDGER_SIDE_LOG")
    if not path:
        return
    line = f"{kind} {fl.current_run_id()} {position} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@fl.step(rate_limit="acceptance")
def limited(position: int) -> int:
    _log_time("L", position)
    return position


@fl.workflow(name="limited_steps")
def limited_steps(count: int) -> int:
    """``count`` steps, each taking one unit of the shared limit ``acceptance``."""
    return sum(limited(position) for position in range(1, count + 1))


@fl.step
def stamp(position: int) -> int:
    _log_time("S", position)
    return position


@fl.workflow(name="stamped")
def stamped() -> int:
    """One step that logs when it started: the start of the run, for queue-rate tests."""
    return stamp(1)
