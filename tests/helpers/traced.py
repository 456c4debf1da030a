"""A traced workflow run in child processes by tests/acceptance/test_trace_crash.py.

Telemetry comes from the OTEL_* variables the test sets. The ``flaky`` step fails its
first two attempts; the attempt named by BLOCK_AT (``attempt3``) prints ``inflight`` and
waits for a line on stdin, so the test can SIGKILL the process there.

Usage: python -m tests.helpers.traced start URL
       python -m tests.helpers.traced resume URL RUN_ID
"""

from __future__ import annotations

import json
import os
import sys

import flowledger as fl

BLOCK_AT = os.environ.get("BLOCK_AT", "")


@fl.step()
def prepare(n: int) -> int:
    return n + 1


@fl.step(retries=5, backoff=0.001)
def flaky(n: int) -> int:
    attempt = fl.current_step().attempt
    fl.record_usage("gpt-4o-mini", input_tokens=10 * attempt, output_tokens=2,
                    provider="openai")
    if attempt <= 2:
        raise ConnectionError(f"attempt {attempt} failed")
    if f"attempt{attempt}" == BLOCK_AT:
        print(f"inflight {BLOCK_AT}", flush=True)
        sys.stdin.readline()
    return n * 2


@fl.step()
def leaf(n: int) -> int:
    return n + 100


@fl.workflow(name="traced_kid")
def kid(n: int) -> int:
    return leaf(n)


@fl.workflow(name="traced_crash")
def crashing(n: int) -> int:
    return kid(flaky(prepare(n)))


def main(argv: list[str]) -> int:
    command, url = argv[0], argv[1]
    with fl.Ledger(url) as ledger:
        if command == "start":
            handle = ledger.start(crashing, 1)
            print("run", handle.id, flush=True)
        elif command == "resume":
            handle = ledger.resume(argv[2])
        else:
            raise SystemExit(f"unknown command {command!r}")
        print("result", json.dumps(handle.result()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
