"""DBOS Transact workloads (run with the dbos venv's python). See _common.py.

Workflows/steps per the DBOS Python docs: ``@DBOS.workflow()`` / ``@DBOS.step()``,
``DBOS(config={"name": ..., "system_database_url": ...})`` then ``DBOS.launch()``.
A crashed (PENDING) workflow is recovered by ``DBOS.launch()`` in the next process of
the same executor ("local") and application version; we wait on its handle.
"""

from __future__ import annotations

import asyncio
import logging
import time

import _common as c
from dbos import DBOS, SetWorkflowID


@DBOS.step()
def step(i: int) -> int:
    return c.body(i)


@DBOS.step()
async def astep(i: int) -> int:
    return c.body(i)


@DBOS.workflow()
def seq(n: int) -> int:
    total = 0
    for i in range(n):
        total += step(i)
    return total


@DBOS.workflow()
async def fanout(n: int) -> int:
    return sum(await asyncio.gather(*[astep(i) for i in range(n)]))


def expected(n: int) -> int:
    return n * (n + 1) // 2


def open_dbos(url: str) -> None:
    DBOS(config={"name": "peers-bench", "system_database_url": url,
                 "run_admin_server": False, "log_level": "WARNING"})
    DBOS.launch()


def main() -> None:
    a = c.parse_args()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    if a.workload == "resume":
        t0 = time.perf_counter()
        open_dbos(a.url)          # launch() recovers this executor's PENDING workflows
        t1 = time.perf_counter()
        out = DBOS.retrieve_workflow(a.run_id).get_result(polling_interval_sec=0.001)
        t2 = time.perf_counter()
        c.check(out == expected(a.n), f"resumed output {out}")
        DBOS.destroy()
        c.emit(seconds=t2 - t0, open_seconds=t1 - t0, executed=c.executed)
        return
    open_dbos(a.url)
    seq(c.WARMUP_STEPS)
    if a.workload == "steps":
        with c.Timer() as t:
            out = seq(a.n)
        c.check(out == expected(a.n), "output")
    elif a.workload == "throughput":
        with c.Timer() as t:
            for _ in range(a.n):
                seq(3)
    elif a.workload == "fanout":
        asyncio.run(fanout(4))
        with c.Timer() as t:
            out = asyncio.run(fanout(a.n))
        c.check(out == expected(a.n), "output")
    elif a.workload == "crash":
        c.note_run_id(a.token)
        with SetWorkflowID(a.token):
            seq(a.n)
        raise SystemExit("crash workload finished without being killed")
    DBOS.destroy()
    c.emit(seconds=t.seconds)


if __name__ == "__main__":
    main()
