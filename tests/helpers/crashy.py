"""Workflows run in child processes by the acceptance tests, which SIGKILL them.

Every step appends a line to the side-effect log named by FLOWLEDGER_TEST_LOG. The step
whose tag equals BLOCK_AT prints ``inflight <tag>`` and waits for a line on stdin, so a
test can kill the process while that step is in flight, or let it go on.

Usage: python -m tests.helpers.crashy start URL WORKFLOW ARG
       python -m tests.helpers.crashy resume URL RUN_ID
       python -m tests.helpers.crashy recover URL
       python -m tests.helpers.crashy open URL        (waits for "go" on stdin first)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import flowledger as fl

LOG = os.environ.get("FLOWLEDGER_TEST_LOG", os.devnull)
BLOCK_AT = os.environ.get("BLOCK_AT", "")


def side_effect(line: str) -> None:
    if os.devnull == LOG:
        return
    with open(LOG, "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def maybe_block(tag: str) -> None:
    if tag == BLOCK_AT:
        print(f"inflight {tag}", flush=True)
        sys.stdin.readline()


@fl.step()
def work(i: int) -> int:
    side_effect(f"work {i}")
    maybe_block(str(i))
    return i * i


@fl.workflow(name="crash_chain")
def chain(n: int) -> int:
    total = 0
    for i in range(1, n + 1):
        total += work(i)
    return total


@fl.step(retries=5, backoff=0.001)
def flaky() -> int:
    attempt = fl.current_step().attempt
    side_effect(f"attempt {attempt}")
    if attempt <= 2:
        raise ConnectionError(f"attempt {attempt} failed")
    maybe_block(f"attempt{attempt}")
    return attempt


@fl.workflow(name="crash_retry")
def retrying(_: int) -> int:
    return flaky()


@fl.step()
async def fan_item(i: int) -> int:
    side_effect(f"item {i}")
    if str(i) == BLOCK_AT:
        await asyncio.get_running_loop().run_in_executor(None, maybe_block, str(i))
    return i * 10


@fl.workflow(name="crash_fanout_async")
async def fanout_async(n: int) -> list[int]:
    return list(await asyncio.gather(*[fan_item(i) for i in range(n)]))


@fl.step()
def thread_item(i: int) -> int:
    side_effect(f"item {i}")
    maybe_block(str(i))
    return i * 10


@fl.workflow(name="crash_fanout_threads")
def fanout_threads(n: int) -> list[int]:
    return fl.map_steps(thread_item, range(n), max_workers=4)


@fl.workflow(name="crash_parent")
def parent(n: int) -> int:
    return chain(n) + work(100)


@fl.step()
def remember(i: int) -> int:
    fl.context.set("last", i)
    fl.context.set(f"item{i}", {"square": i * i})
    side_effect(f"remember {i}")
    maybe_block(str(i))
    return i


@fl.workflow(name="crash_context")
def with_context(n: int) -> dict[str, Any]:
    fl.context.set("started", True)
    for i in range(1, n + 1):
        remember(i)
    return fl.context.as_dict()



WORKFLOWS: dict[str, Any] = {"chain": chain, "retry": retrying, "parent": parent,
                             "fanout_async": fanout_async, "fanout_threads": fanout_threads,
                             "context": with_context}


def report(handle: fl.RunHandle) -> int:
    try:
        print("result", json.dumps(handle.result()), flush=True)
        return 0
    except fl.FlowledgerError as exc:
        print("error", type(exc).__name__, exc, flush=True)
        return 1


def main(argv: list[str]) -> int:
    command, url = argv[0], argv[1]
    if command == "open":
        print("ready", flush=True)
        sys.stdin.readline()
        with fl.Ledger(url) as ledger:
            print("result", json.dumps(ledger.run(chain, 3)), flush=True)
        return 0
    with fl.Ledger(url) as ledger:
        if command == "start":
            handle = ledger.start(WORKFLOWS[argv[2]], int(argv[3]))
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

