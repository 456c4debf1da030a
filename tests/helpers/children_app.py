"""A parent that starts three children and gathers them, run in a child process that the
acceptance tests SIGKILL while the parent waits (tests/acceptance/test_children_crash.py).

Every step appends a line to the side-effect log named by FLOWLEDGER_TEST_LOG. The three
``work`` steps meet at a barrier (each is in flight until all three are), so the children
provably run at once; with BLOCK_FINISH set, child 2's ``finish`` step prints ``inflight``
and waits for a line on stdin.

Usage: python -m tests.helpers.children_app start URL N
       python -m tests.helpers.children_app resume URL RUN_ID
       python -m tests.helpers.children_app recover URL
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import flowledger as fl

LOG = os.environ.get("FLOWLEDGER_TEST_LOG", os.devnull)
BLOCK_FINISH = os.environ.get("BLOCK_FINISH") == "1"
_meet = threading.Barrier(3)


def side_effect(line: str) -> None:
    with open(LOG, "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


@fl.step()
def work(i: int) -> int:
    side_effect(f"start {i}")
    _meet.wait(timeout=30)  # all three children are in this step at once
    side_effect(f"end {i}")
    return i * 10


@fl.step()
def finish(i: int) -> int:
    side_effect(f"finish {i}")
    if i == 2 and BLOCK_FINISH:
        print(f"inflight finish {i}", flush=True)
        sys.stdin.readline()
    return i


@fl.workflow(name="gather_kid")
def kid(i: int) -> int:
    return work(i) + finish(i)


@fl.workflow(name="gather_parent")
def parent(n: int) -> list[int]:
    handles = [fl.start_child(kid, i) for i in range(n)]
    return fl.gather(*handles)


@fl.step()
def held(i: int, gate: str) -> int:
    """Blocks until the test creates the file ``gate`` (bounded: a broken test ends)."""
    deadline = time.monotonic() + 60
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.01)
    return i


@fl.workflow(name="queued_kid")
def queued_kid(i: int, gate: str) -> int:
    return held(i, gate) * 10


@fl.workflow(name="queued_parent")
def queued_parent(n: int, gate: str) -> list[int]:
    """Starts ``n`` children in the queue ``kids`` (workers execute them) and gathers."""
    return fl.gather(*[fl.start_child(queued_kid, i, gate, queue="kids") for i in range(n)])


def report(handle: fl.RunHandle) -> int:
    try:
        print("result", json.dumps(handle.result()), flush=True)
        return 0
    except fl.FlowledgerError as exc:
        print("error", type(exc).__name__, exc, flush=True)
        return 1


def main(argv: list[str]) -> int:
    command, url = argv[0], argv[1]
    with fl.Ledger(url) as ledger:
        if command == "start":
            handle = ledger.start(parent, int(argv[2]))
            print("run", handle.id, flush=True)
            return report(handle)
        if command == "resume":
            return report(ledger.resume(argv[2]))
        if command == "recover":
            handles = ledger.recover()
            print("recovered", len(handles), flush=True)
            return max([report(h) for h in handles], default=0)
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
