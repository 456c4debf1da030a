"""Shared by the per-system workload scripts (imported from each peer's own venv).

Stdlib only: each worker runs under a different interpreter/venv.
Every worker is invoked as

    <venv python> bench/peers/w_<system>.py WORKLOAD N [--url URL] [--durability D] [--token T]

and prints exactly one line ``BENCH_RESULT {json}`` on stdout (libraries may log
around it). WORKLOAD is one of: steps, throughput, fanout, crash, resume.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

CRASH_AT_ENV = "PEERS_BENCH_CRASH_AT"   # 1-based position of the step that SIGKILLs its process
WARMUP_STEPS = 10

executed = 0   # step bodies executed in this process (resume check)
_crash_at = int(os.environ.get(CRASH_AT_ENV, "0"))


def body(i: int) -> int:
    """The trivial step body shared by every system: i -> i + 1.

    ``i`` is the 0-based index of a sequential step, so the step at 1-based position
    ``i + 1`` kills its own process when that position is PEERS_BENCH_CRASH_AT.
    """
    global executed  # noqa: PLW0603 - a per-process counter read by the resume check
    executed += 1
    if _crash_at and i + 1 == _crash_at:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return i + 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["steps", "throughput", "fanout", "crash", "resume"])
    parser.add_argument("n", type=int)
    parser.add_argument("--url", default="")
    parser.add_argument("--durability", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--run-id", default="")
    return parser.parse_args()


def emit(**values: Any) -> None:
    print("BENCH_RESULT " + json.dumps(values), flush=True)


def note_run_id(run_id: str) -> None:
    print("BENCH_RUN_ID " + run_id, flush=True)


def na(reason: str) -> None:
    emit(na=reason)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark self-check failed: {message}")
