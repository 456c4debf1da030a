"""flowledger workloads (run with /work/main/.venv/bin/python). See _common.py."""

from __future__ import annotations

import asyncio
import time

import _common as c

import flowledger as fl


@fl.step()
def step(i: int) -> int:
    return c.body(i)


@fl.step()
async def astep(i: int) -> int:
    return c.body(i)


@fl.workflow(name="peers_seq")
def seq(n: int) -> int:
    total = 0
    for i in range(n):
        total += step(i)
    return total


@fl.workflow(name="peers_fanout")
async def fanout(n: int) -> int:
    return sum(await asyncio.gather(*[astep(i) for i in range(n)]))


def expected(n: int) -> int:
    return n * (n + 1) // 2


def main() -> None:
    a = c.parse_args()
    if a.workload == "resume":
        t0 = time.perf_counter()
        ledger = fl.Ledger(a.url, durability=a.durability)
        t1 = time.perf_counter()
        out = ledger.resume(a.run_id).result()
        t2 = time.perf_counter()
        c.check(out == expected(a.n), f"resumed output {out}")
        ledger.close()
        c.emit(seconds=t2 - t0, open_seconds=t1 - t0, executed=c.executed)
        return
    ledger = fl.Ledger(a.url, durability=a.durability)
    ledger.run(seq, c.WARMUP_STEPS)
    if a.workload == "steps":
        with c.Timer() as t:
            out = ledger.run(seq, a.n)
        c.check(out == expected(a.n), "output")
    elif a.workload == "throughput":
        with c.Timer() as t:
            for _ in range(a.n):
                ledger.run(seq, 3)
    elif a.workload == "fanout":
        ledger.run(fanout, 4)
        with c.Timer() as t:
            out = ledger.run(fanout, a.n)
        c.check(out == expected(a.n), "output")
    elif a.workload == "crash":
        handle = ledger.start(seq, a.n)
        c.note_run_id(handle.id)
        handle.result()
        raise SystemExit("crash workload finished without being killed")
    ledger.close()
    c.emit(seconds=t.seconds)


if __name__ == "__main__":
    main()
