"""Workflows for the metrics tests: completed and failed runs, a step that fails once and
is retried, LLM calls recorded on a step."""

from __future__ import annotations

import os
import time
from pathlib import Path

import flowledger as fl


@fl.step(retries=2, backoff=0.01)
def fetch(n: int, markers: str) -> int:
    """Fails its first attempt for even ``n`` (a marker file per run says it was tried),
    whichever worker process executes it. The work takes a moment, so both workers of a
    test get runs to execute."""
    time.sleep(0.2)  # the work itself (a call upstream), not a synchronisation
    if n % 2 == 0:
        marker = Path(markers) / f"{fl.current_run_id()}.tried"
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return n
        os.close(fd)
        raise ConnectionError("flaky upstream: first attempt fails")
    return n


@fl.step
def summarize(n: int) -> str:
    fl.record_usage("gpt-4o-mini", input_tokens=100 + n, output_tokens=20 + n,
                    cached_input_tokens=n, provider="openai")
    if n % 3 == 0:
        fl.record_usage("claude-3-5-haiku-20241022", input_tokens=50, output_tokens=10,
                        reasoning_tokens=4, provider="anthropic")
    return f"summary {n}"


@fl.step
def publish(n: int, fail: bool) -> int:
    if fail:
        raise ValueError(f"cannot publish {n}")
    return n


@fl.workflow(name="metrics_mixed")
def mixed(n: int, markers: str, fail: bool = False) -> int:
    fetch(n, markers)
    summarize(n)
    return publish(n, fail)


@fl.workflow(name="metrics_plain")
def plain(n: int) -> int:
    return publish(n, False)
