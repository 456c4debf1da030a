"""Peak memory of `flowledger export --format jsonl` as the store grows (should stay flat).

Fills a SQLite file with N runs of 3 steps each (bulk-loaded), then runs the real CLI
export in a child process and reads that child's peak RSS from the kernel.

    .venv/bin/python bench/export_memory.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from flowledger import ids
from flowledger.store import SqlStore

STEPS = 3


def fill(store: SqlStore, runs: int, batch: int = 5000) -> None:
    start = ids.now_us() - runs * 1000
    output = json.dumps({"summary": "x" * 200, "items": list(range(20))})
    for offset in range(0, runs, batch):
        run_rows, step_rows = [], []
        for i in range(offset, min(offset + batch, runs)):
            run_id = ids.new_run_id()
            created = start + i * 1000
            run_rows.append({
                "id": run_id, "workflow": f"wf{i % 5}", "version": "1", "entrypoint": "m:f",
                "owner": f"owner{i % 7}", "status": "completed", "serializer": "json",
                "inputs": json.dumps({"i": i}), "output": output, "created_at": created,
                "started_at": created, "completed_at": created + 900,
                "total_steps": STEPS, "completed_steps": STEPS,
                "lease_token": uuid.uuid4().hex[:16],
            })
            step_rows += [{"run_id": run_id, "position": p, "name": f"step{p}",
                           "status": "completed", "attempts": 1, "input": '{"i": 1}',
                           "output": output, "started_at": created + p * 100,
                           "completed_at": created + p * 100 + 50, "child_run_id": None}
                          for p in range(1, STEPS + 1)]
        store.load_records(run_rows, step_rows)


def export_peak(url: str, target: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one `flowledger export` child process."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "flowledger", "-q", "--db", url, "export",
                              "--format", "jsonl", "-o", str(target)])
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("export failed")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    print(f"{'runs':>9} {'steps':>9} {'export s':>9} {'peak RSS MiB':>13} {'output MiB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            url = f"sqlite:///{tmp}/export-{size}.db"
            store = SqlStore(url, durability="normal")
            fill(store, size)
            store.close()
            target = Path(tmp) / f"export-{size}.jsonl"
            seconds, peak = export_peak(url, target)
            lines = sum(1 for _ in target.open())
            assert lines == size, (lines, size)
            print(f"{size:>9,} {size * STEPS:>9,} {seconds:>9.1f} {peak:>13.1f} "
                  f"{target.stat().st_size / 2**20:>11.1f}")


if __name__ == "__main__":
    main()
