"""Prefect 3 workloads (run with the prefect venv's python). See _common.py.

``@flow`` calling ``@task`` steps against Prefect's ephemeral local server (started
by the first flow run of the process, on the SQLite database under PREFECT_HOME, which
the orchestrator points to a fresh folder). Tasks persist their results
(``persist_result=True``) and are keyed by ``cache_policy=INPUTS``; the run token is an
input, so only a re-run of the same crashed flow can hit those records.

Prefect does not resume a crashed flow run in place: the documented recovery is to run
the flow again, completed tasks being served from their persisted, cached results.
That is what the "resume" workload times (a new flow run with the same inputs).
"""

from __future__ import annotations

import time

import _common as c
from prefect import flow, task
from prefect.cache_policies import INPUTS
from prefect.client.orchestration import get_client


@task(persist_result=True, cache_policy=INPUTS)
def step(token: str, i: int) -> int:
    return c.body(i)


@flow(persist_result=True)
def seq(token: str, n: int) -> int:
    total = 0
    for i in range(n):
        total += step(token, i)
    return total


@flow(persist_result=True)
def fanout(token: str, n: int) -> int:
    return sum(step.map(token, range(n)).result())


def expected(n: int) -> int:
    return n * (n + 1) // 2


def main() -> None:
    a = c.parse_args()
    if a.workload == "resume":
        # the ephemeral server starts on the first API call: time it as this system's
        # "open", then re-run the crashed flow
        t0 = time.perf_counter()
        with get_client(sync_client=True) as client:
            client.hello()
        t1 = time.perf_counter()
        out = seq(a.run_id, a.n)
        t2 = time.perf_counter()
        c.check(out == expected(a.n), f"resumed output {out}")
        c.emit(seconds=t2 - t0, open_seconds=t1 - t0, executed=c.executed)
        return
    seq(a.token + "-warm", c.WARMUP_STEPS)
    if a.workload == "steps":
        with c.Timer() as t:
            out = seq(a.token, a.n)
        c.check(out == expected(a.n), "output")
    elif a.workload == "throughput":
        with c.Timer() as t:
            for k in range(a.n):
                seq(f"{a.token}-{k}", 3)
    elif a.workload == "fanout":
        fanout(a.token + "-warmfan", 4)
        with c.Timer() as t:
            out = fanout(a.token, a.n)
        c.check(out == expected(a.n), "output")
    elif a.workload == "crash":
        c.note_run_id(a.token)
        seq(a.token, a.n)
        raise SystemExit("crash workload finished without being killed")
    c.emit(seconds=t.seconds)


if __name__ == "__main__":
    main()
