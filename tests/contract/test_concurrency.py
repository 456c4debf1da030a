"""Concurrent steps get positions in call order, for asyncio and for the thread pool."""

from __future__ import annotations

import asyncio
import threading

import pytest

import flowledger as fl


@fl.step()
async def fetch_async(i: int) -> int:
    return i * 10


@fl.workflow(name="conc_gather")
async def gather_reversed(n: int) -> list[int]:
    done = [asyncio.Event() for _ in range(n)]

    @fl.step(name="item")
    async def item(i: int) -> int:
        if i + 1 < n:  # each item waits for the next: completion order is reversed
            await done[i + 1].wait()
        done[i].set()
        return i * 10

    return list(await asyncio.gather(*[item(i) for i in range(n)]))


def test_gather_positions_follow_call_order_not_completion(ledger: fl.Ledger) -> None:
    assert ledger.run(gather_reversed, 5) == [0, 10, 20, 30, 40]
    run = ledger.get(ledger.runs(workflow="conc_gather").runs[0].id)
    assert [(s.position, s.input) for s in run.steps] == [(p, {"i": p - 1}) for p in range(1, 6)]
    finished = [s.position for s in sorted(run.steps, key=lambda s: s.completed_at)]  # type: ignore[arg-type, return-value]
    assert finished == [5, 4, 3, 2, 1]


def test_map_steps_positions_follow_item_order(ledger: fl.Ledger) -> None:
    barrier = threading.Barrier(3)

    @fl.step()
    def square(x: int) -> int:
        barrier.wait(30)  # three run at once, so threads really overlap
        return x * x

    @fl.workflow(name="conc_map")
    def mapped(xs: list[int]) -> list[int]:
        return fl.map_steps(square, xs, max_workers=3)

    assert ledger.run(mapped, [3, 1, 2]) == [9, 1, 4]
    run = ledger.get(ledger.runs(workflow="conc_map").runs[0].id)
    assert [(s.position, s.input, s.output) for s in run.steps] == [
        (1, {"x": 3}, 9), (2, {"x": 1}, 1), (3, {"x": 2}, 4)]


def test_step_pool_rejects_async_steps() -> None:
    with fl.StepPool() as pool, pytest.raises(fl.ConfigurationError, match=r"asyncio\.gather"):
        pool.submit(fetch_async, 1)


def test_async_run_inside_a_running_loop(ledger: fl.Ledger) -> None:
    async def main() -> list[int]:
        with pytest.raises(fl.ConfigurationError, match="run_async"):
            ledger.run(gather_reversed, 2)
        result: list[int] = await ledger.run_async(gather_reversed, 3)
        return result

    assert asyncio.run(main()) == [0, 10, 20]
