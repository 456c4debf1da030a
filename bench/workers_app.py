"""The workflow `bench/workers.py` queues; its worker processes import it with
`--app bench.workers_app` (run from the repository root)."""

from __future__ import annotations

import flowledger as fl


@fl.step
def inc(n: int) -> int:
    return n + 1


@fl.workflow(name="bench_three_steps")
def three_steps(n: int) -> int:
    return inc(inc(inc(n)))
