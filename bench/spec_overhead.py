"""What a spec costs next to the same work written as Python: per-step overhead of a
spec's steps (expressions evaluated, the request recorded) against ``@fl.step`` calls,
a ``for_each`` fan-out, and validating a large spec. Figures and ratios are measured in
the same run, on the same SQLite store (durability full).

    .venv/bin/python bench/spec_overhead.py [--steps 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import flowledger as fl


@fl.step()
def add_one(x: int) -> int:
    return x + 1


@fl.workflow(name="bench_python_chain")
def python_chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = add_one(value)
    return value


def add(x: int) -> int:
    """The function the spec's python steps call (the same work as ``add_one``)."""
    return x + 1


def chain_spec(n: int) -> str:
    lines = ["flowledger: 1", "name: bench_spec_chain", "steps:",
             "  - {id: s0, python: 'bench.spec_overhead:add', with: {x: 0}}"]
    lines += [f"  - {{id: s{i}, python: 'bench.spec_overhead:add', "
              f"with: {{x: '{{{{ steps.s{i - 1}.output }}}}'}}}}" for i in range(1, n)]
    lines.append(f"output: '{{{{ steps.s{n - 1}.output }}}}'")
    return "\n".join(lines) + "\n"


def set_spec(n: int) -> str:
    lines = ["flowledger: 1", "name: bench_spec_set", "steps:"]
    lines += [f"  - {{id: s{i}, set: {{v{i % 10}: {i}}}}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def fan_spec(n: int) -> str:
    return ("flowledger: 1\nname: bench_spec_fan\nsteps:\n"
            f"  - id: fan\n    for_each: '{{{{ range({n}) | list }}}}'\n    concurrency: 1\n"
            "    python: 'bench.spec_overhead:add'\n    with: {x: '{{ item }}'}\n")


def median_us(fn: Callable[[], object], steps: int, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.steps
    chain, sets, fan = (fl.parse_spec(chain_spec(n)), fl.parse_spec(set_spec(n)),
                        fl.parse_spec(fan_spec(n)))
    with tempfile.TemporaryDirectory() as folder, \
            fl.Ledger(f"sqlite:///{Path(folder) / 'bench.db'}") as ledger:
        assert ledger.run(python_chain, n) == ledger.run(chain) == n  # same work, same result
        python_us = median_us(lambda: ledger.run(python_chain, n), n, args.repeat)
        spec_us = median_us(lambda: ledger.run(chain), n, args.repeat)
        set_us = median_us(lambda: ledger.run(sets), n, args.repeat)
        fan_us = median_us(lambda: ledger.run(fan), n, args.repeat)
    big = chain_spec(2000)
    start = time.perf_counter()
    fl.parse_spec(big)
    parse_ms = (time.perf_counter() - start) * 1e3
    print(f"per step, {n} sequential steps, SQLite (durability full), median of {args.repeat}:")
    print(f"  python @fl.step chain             {python_us:8.1f} µs/step")
    print(f"  spec python steps (expressions)   {spec_us:8.1f} µs/step   "
          f"{spec_us / python_us:.2f}x the Python workflow")
    print(f"  spec set steps (context writes)   {set_us:8.1f} µs/step")
    print(f"  spec for_each of {n} items         {fan_us:8.1f} µs/item")
    print(f"validating a 2000-step spec: {parse_ms:.0f} ms ({parse_ms / 2000 * 1e3:.0f} µs/step)")


if __name__ == "__main__":
    main()
