"""Start-up time: what `import flowledger` and each CLI call cost before doing anything.

Every figure is a whole process, measured here next to `python -c pass` and next to
importing SQLAlchemy alone (the floor of any command that opens a store), median of
several runs. Then the modules `import flowledger` loads, by cumulative import time
(`python -X importtime`).

    .venv/bin/python bench/startup.py [--repeat 7] [--runs 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this checkout's flowledger, and bench

TARGETS = {"import flowledger": 0.150, "flowledger --version": 0.250,
           "flowledger runs (SQLite)": 0.400}


def wall(command: list[str], repeat: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def import_profile(env: dict[str, str], top: int = 12) -> list[tuple[int, str]]:
    """(cumulative µs, module) of the slowest top-level imports of `import flowledger`."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import flowledger"],
                          env=env, capture_output=True, text=True, check=True)
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        found.append((int(cumulative), name))
    return sorted(found, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5000, help="runs in the SQLite store")
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("flowledger"))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/startup.db"
        # Imported once sys.path names this checkout (module level would need E402).
        import flowledger as fl  # noqa: PLC0415
        from bench.scale import fill  # noqa: PLC0415 (a store of real-looking runs)

        with fl.Ledger(url) as ledger:
            fill(ledger, args.runs)
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("python -c 'import sqlalchemy' (floor)", [sys.executable, "-c",
                                                       "import sqlalchemy"]),
            ("import flowledger", [sys.executable, "-c", "import flowledger"]),
            ("flowledger --version", [cli, "--version"]),
            ("flowledger --help", [cli, "--help"]),
            ("flowledger runs (SQLite)", [cli, "--db", url, "runs"]),
        ]
        results = [(name, wall(command, args.repeat, env)) for name, command in cases]
    base = results[0][1]
    print(f"\nwhole-process wall time, median of {args.repeat} (store: {args.runs:,} runs)\n")
    print(f"{'process':<40} {'seconds':>8} {'x pass':>8}   target")
    for name, seconds in results:
        target = TARGETS.get(name)
        verdict = "" if target is None else \
            f"≤ {target:.3f} {'✔' if seconds <= target else '✘'}"
        print(f"{name:<40} {seconds:>8.3f} {seconds / base:>8.1f}   {verdict}")
    timings = dict(results)
    floor = timings["python -c 'import sqlalchemy' (floor)"]
    print(f"\nflowledger runs beyond importing SQLAlchemy: "
          f"{timings['flowledger runs (SQLite)'] - floor:.3f} s")
    print("\nslowest imports under `import flowledger` (cumulative ms)")
    for micros, name in import_profile(env):
        print(f"  {micros / 1000:>7.1f}  {name}")


if __name__ == "__main__":
    main()
