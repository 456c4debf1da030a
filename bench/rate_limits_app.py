"""The workflows `bench/rate_limits.py` runs; its worker processes import it with
`--app bench.rate_limits_app` (run from the repository root). Each limited call appends
its start time to the file named by ``BENCH_CALL_LOG`` (one O_APPEND write a line)."""

from __future__ import annotations

import os
import time

import flowledger as fl


def _log_call() -> None:
    path = os.environ.get("BENCH_CALL_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{time.time():.6f}\n".encode())
        finally:
            os.close(fd)


@fl.step(rate_limit="bench")
def limited(n: int) -> int:
    _log_call()
    return n + 1


@fl.step
def unlimited(n: int) -> int:
    return n + 1


@fl.workflow(name="bench_limited_steps")
def limited_steps(count: int) -> int:
    total = 0
    for _ in range(count):
        total = limited(total)
    return total


@fl.workflow(name="bench_unlimited_steps")
def unlimited_steps(count: int) -> int:
    total = 0
    for _ in range(count):
        total = unlimited(total)
    return total
