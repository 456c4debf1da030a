"""LangGraph workloads, functional API (run with the langgraph venv's python).

``@entrypoint(checkpointer=SqliteSaver(...))`` workflows calling ``@task`` steps; each
task's result is saved as a checkpoint write, and invoking the entrypoint again with
``None`` on the same ``thread_id`` resumes it (completed tasks are not re-run).
Invoked with ``durability="sync"`` (the strongest mode). SqliteSaver's setup sets
``journal_mode=WAL`` and leaves ``synchronous`` at SQLite's default (FULL).
See _common.py.
"""

from __future__ import annotations

import sqlite3
import time
import uuid

import _common as c
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.func import entrypoint, task


@task
def step(i: int) -> int:
    return c.body(i)


def build(saver: SqliteSaver):  # type: ignore[no-untyped-def]
    @entrypoint(checkpointer=saver)
    def seq(n: int) -> int:
        total = 0
        for i in range(n):
            total += step(i).result()
        return total

    @entrypoint(checkpointer=saver)
    def fanout(n: int) -> int:
        futures = [step(i) for i in range(n)]
        return sum(f.result() for f in futures)

    return seq, fanout


def config(thread_id: str | None = None) -> dict:
    return {"configurable": {"thread_id": thread_id or uuid.uuid4().hex}}


def expected(n: int) -> int:
    return n * (n + 1) // 2


def path_of(url: str) -> str:
    return url.removeprefix("sqlite:///")


def main() -> None:
    a = c.parse_args()
    if a.workload == "resume":
        t0 = time.perf_counter()
        saver = SqliteSaver(sqlite3.connect(path_of(a.url), check_same_thread=False))
        seq, _ = build(saver)
        t1 = time.perf_counter()
        out = seq.invoke(None, config(a.run_id), durability="sync")
        t2 = time.perf_counter()
        c.check(out == expected(a.n), f"resumed output {out}")
        c.emit(seconds=t2 - t0, open_seconds=t1 - t0, executed=c.executed)
        return
    conn = sqlite3.connect(path_of(a.url), check_same_thread=False)
    saver = SqliteSaver(conn)
    seq, fanout = build(saver)
    seq.invoke(c.WARMUP_STEPS, config(), durability="sync")
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if a.workload == "steps":
        with c.Timer() as t:
            out = seq.invoke(a.n, config(), durability="sync")
        c.check(out == expected(a.n), "output")
    elif a.workload == "throughput":
        with c.Timer() as t:
            for _ in range(a.n):
                seq.invoke(3, config(), durability="sync")
    elif a.workload == "fanout":
        fanout.invoke(4, config(), durability="sync")
        with c.Timer() as t:
            out = fanout.invoke(a.n, config(), durability="sync")
        c.check(out == expected(a.n), "output")
    elif a.workload == "crash":
        c.note_run_id(a.token)
        seq.invoke(a.n, config(a.token), durability="sync")
        raise SystemExit("crash workload finished without being killed")
    c.emit(seconds=t.seconds, synchronous=sync, journal_mode=journal)


if __name__ == "__main__":
    main()
