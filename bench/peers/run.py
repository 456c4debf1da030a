"""flowledger against peer durable-execution systems: same workloads, one table.

    .venv/bin/python bench/peers/run.py [--quick] [--repeat 3]
        [--systems flowledger,dbos,prefect,langgraph] [--no-postgres]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
        [--cache-dir ~/.cache/flowledger-bench]

Each peer gets its own virtual environment under the cache folder (created and
pip-installed from PyPI on first use, reused afterwards); flowledger runs from this
checkout's .venv. Every measurement is one subprocess running a w_<system>.py workload
with that environment's python; it prints ``BENCH_RESULT {json}``; peak memory is the
subprocess's ru_maxrss as reported by wait4. See README.md in this folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg  # from flowledger's .venv (this script runs there)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FLOWLEDGER_PYTHON = ROOT / ".venv" / "bin" / "python"
ALL_SYSTEMS = ["flowledger", "dbos", "prefect", "langgraph"]
CRASH_AT_ENV = "PEERS_BENCH_CRASH_AT"

# pip requirements per peer venv. Prefect 3.8.8's server still passes `min_items=` to
# fastapi.Body, which fastapi 0.165 (what pip picks) rejects at import; its own
# constraint allows >=0.139, and 0.139 works, so the venv pins it.
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "dbos": ["dbos"],
    "prefect": ["prefect", "fastapi>=0.139,<0.140"],
    "langgraph": ["langgraph", "langgraph-checkpoint-sqlite"],
}
VERSION_OF = {"flowledger": "flowledger", "dbos": "dbos", "prefect": "prefect",
              "langgraph": "langgraph"}


@dataclass
class Config:
    """One row group: a system on one backend with one durability setting."""
    system: str
    backend: str            # "sqlite" | "postgres"
    durability: str         # shown in the table
    level: str              # "full" | "normal": the flowledger row it is compared with
    flowledger_durability: str = ""   # only for flowledger rows


@dataclass
class Sizes:
    steps: int
    throughput: int
    throughput_prefect: int
    fanout: int
    crash: int


FULL = Sizes(steps=1000, throughput=500, throughput_prefect=50, fanout=100, crash=1000)
QUICK = Sizes(steps=200, throughput=50, throughput_prefect=10, fanout=50, crash=200)


def configs(systems: list[str], postgres: bool) -> list[Config]:
    out: list[Config] = []
    if "flowledger" in systems:
        out += [Config("flowledger", "sqlite", "WAL, synchronous=FULL", "full", "full"),
                Config("flowledger", "sqlite", "WAL, synchronous=NORMAL", "normal", "normal")]
        if postgres:
            out.append(Config("flowledger", "postgres", "synchronous_commit=on", "full",
                              "full"))
    if "dbos" in systems:
        # DBOS's SQLite engine sets only busy_timeout and foreign_keys: SQLite defaults,
        # i.e. rollback journal (journal_mode=DELETE) with synchronous=FULL.
        out.append(Config("dbos", "sqlite", "journal=DELETE, synchronous=FULL (defaults)",
                          "full"))
        if postgres:
            out.append(Config("dbos", "postgres", "synchronous_commit=on (server default)",
                              "full"))
    if "prefect" in systems:
        # prefect/server/database/configurations.py: journal_mode=WAL, synchronous=NORMAL
        out.append(Config("prefect", "sqlite", "WAL, synchronous=NORMAL (server)", "normal"))
    if "langgraph" in systems:
        # SqliteSaver.setup(): PRAGMA journal_mode=WAL; synchronous left at FULL
        out.append(Config("langgraph", "sqlite", "WAL, synchronous=FULL; durability=sync",
                          "full"))
    return out


# -- environments ---------------------------------------------------------------------

def python_for(system: str, cache: Path) -> Path:
    if system == "flowledger":
        return FLOWLEDGER_PYTHON
    return cache / system / "bin" / "python"


def ensure_venv(system: str, cache: Path) -> Path:
    python = python_for(system, cache)
    if system == "flowledger":
        if not python.exists():
            raise SystemExit(f"{python} missing: run ./scripts/demo or ./scripts/test first")
        return python
    marker = cache / system / ".bench-installed"
    if marker.exists() and python.exists():
        return python
    print(f"[setup] creating {cache / system} and installing "
          f"{' '.join(PEER_REQUIREMENTS[system])} (a few minutes)", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(cache / system)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    *PEER_REQUIREMENTS[system]], check=True)
    marker.write_text(" ".join(PEER_REQUIREMENTS[system]) + "\n")
    return python


def package_version(python: Path, package: str) -> str:
    out = subprocess.run([str(python), "-c",
                          f"from importlib.metadata import version; print(version({package!r}))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


# -- one measurement ---------------------------------------------------------------------

@dataclass
class Outcome:
    result: dict[str, Any] | None
    returncode: int
    maxrss_kib: int
    run_id: str = ""
    stderr_tail: str = ""


def run_worker(python: Path, system: str, args: list[str], env: dict[str, str],
               cwd: Path, timeout: float = 900.0) -> Outcome:
    """Run one workload in a fresh process; reap it with wait4 for its peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([str(python), str(HERE / f"w_{system}.py"), *args],
                                stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True)

        def kill_group() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        guard = threading.Timer(timeout, kill_group)
        guard.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            guard.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        # helpers the worker left behind (e.g. Prefect's ephemeral API server when the
        # worker was SIGKILLed) belong to its session/process group: end them
        kill_group()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = None
    run_id = ""
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.removeprefix("BENCH_RESULT "))
        elif line.startswith("BENCH_RUN_ID "):
            run_id = line.removeprefix("BENCH_RUN_ID ").strip()
    return Outcome(result, proc.returncode, usage.ru_maxrss, run_id,
                   "\n".join(stderr.strip().splitlines()[-6:]))


# -- the benchmark -------------------------------------------------------------------------

@dataclass
class Row:
    config: Config
    workload: str
    unit: str
    samples: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    na: str = ""
    opens: list[float] = field(default_factory=list)   # resume: ms to open the store
    reran: list[int] = field(default_factory=list)     # resume: step bodies executed

    def note_text(self) -> str:
        notes = list(self.notes)
        if self.opens:
            low, high = min(self.reran), max(self.reran)
            notes.append(f"of which open {statistics.median(self.opens):,.0f} ms; re-ran "
                         f"{low if low == high else f'{low}-{high}'} steps")
        return "; ".join(notes)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.cache = Path(args.cache_dir).expanduser()
        self.tmp = Path(tempfile.mkdtemp(prefix="flowledger-peers-"))
        self.databases: dict[str, str] = {}     # system -> postgres url
        self.rows: list[Row] = []

    # environment per system and backend
    def env(self, system: str, home: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(CRASH_AT_ENV, None)
        env["PYTHONPATH"] = str(HERE)
        env["DO_NOT_TRACK"] = "1"
        if system == "prefect":
            env.update(PREFECT_HOME=str(home / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING",
                       PREFECT_SERVER_ANALYTICS_ENABLED="false")
            env.pop("PREFECT_API_URL", None)  # ephemeral local server on the SQLite file
        return env

    def url(self, config: Config, home: Path) -> str:
        if config.backend == "postgres":
            return self.databases[config.system]
        return f"sqlite:///{home / 'store.db'}"

    def fresh_home(self) -> Path:
        home = self.tmp / uuid.uuid4().hex[:12]
        home.mkdir()
        return home

    def worker(self, config: Config, workload: str, n: int, home: Path,
               extra: list[str] | None = None, crash_at: int = 0) -> Outcome:
        python = python_for(config.system, self.cache)
        env = self.env(config.system, home)
        if crash_at:
            env[CRASH_AT_ENV] = str(crash_at)
        args = [workload, str(n), "--url", self.url(config, home),
                "--durability", config.flowledger_durability, *(extra or [])]
        return run_worker(python, config.system, args, env, home)

    def measure(self, config: Config) -> None:
        s = self.sizes
        throughput_n = s.throughput_prefect if config.system == "prefect" else s.throughput
        steps = Row(config, f"a: 1 workflow x {s.steps} seq. steps", "µs/step")
        memory = Row(config, "e: peak RSS during (a)", "MiB")
        rate = Row(config, f"b: {throughput_n} workflows x 3 steps", "wf/s")
        fan = Row(config, f"c: fan-out of {s.fanout} steps", "ms")
        resume = Row(config, f"d: resume {s.crash}-step run killed in {s.crash - 1}", "ms")
        if config.system == "prefect" and throughput_n != s.throughput:
            rate.notes.append(f"{throughput_n} not {s.throughput} runs (~1 s each)")
        for rep in range(self.args.repeat):
            label = f"{config.system}/{config.backend}/{config.level}"
            print(f"[run] {label} repetition {rep + 1}/{self.args.repeat}", file=sys.stderr)
            out = self.checked(self.worker(config, "steps", s.steps, self.fresh_home()),
                               steps)
            if out:
                steps.samples.append(out["seconds"] / s.steps * 1e6)
                memory.samples.append(self.last_rss / 1024)
            out = self.checked(self.worker(config, "throughput", throughput_n,
                                           self.fresh_home(), ["--token", uuid.uuid4().hex]),
                               rate)
            if out:
                rate.samples.append(throughput_n / out["seconds"])
            out = self.checked(self.worker(config, "fanout", s.fanout, self.fresh_home(),
                                           ["--token", uuid.uuid4().hex]), fan)
            if out:
                fan.samples.append(out["seconds"] * 1e3)
            self.crash_and_resume(config, resume)
        self.rows += [steps, rate, fan, resume, memory]

    last_rss = 0

    def checked(self, outcome: Outcome, row: Row) -> dict[str, Any] | None:
        self.last_rss = outcome.maxrss_kib
        if outcome.result is None or outcome.returncode != 0:
            row.na = row.na or (f"worker failed (exit {outcome.returncode}): "
                                f"{outcome.stderr_tail.splitlines()[-1:] or ''}")
            print(f"[error] {row.config.system} {row.workload}: exit {outcome.returncode}\n"
                  f"{outcome.stderr_tail}", file=sys.stderr)
            return None
        if "na" in outcome.result:
            row.na = outcome.result["na"]
            return None
        return outcome.result

    def crash_and_resume(self, config: Config, row: Row) -> None:
        n = self.sizes.crash
        home = self.fresh_home()
        token = f"crash-{uuid.uuid4().hex}"
        crashed = self.worker(config, "crash", n, home, ["--token", token], crash_at=n - 1)
        if crashed.returncode != -signal.SIGKILL or not crashed.run_id:
            row.na = row.na or f"crash worker did not die by SIGKILL (exit {crashed.returncode})"
            print(f"[error] crash {config.system}: {crashed.stderr_tail}", file=sys.stderr)
            return
        out = self.checked(self.worker(config, "resume", n, home,
                                       ["--run-id", crashed.run_id]), row)
        if out:
            row.samples.append(out["seconds"] * 1e3)
            row.opens.append(out["open_seconds"] * 1e3)
            row.reran.append(out["executed"])

    # postgres databases -----------------------------------------------------------
    def create_databases(self, systems: list[str]) -> None:
        for system in systems:
            name = f"peers_{system}_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(self.args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            self.databases[system] = self.args.postgres.rsplit("/", 1)[0] + "/" + name

    def drop_databases(self) -> None:
        for url in self.databases.values():
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(self.args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def ratio_text(row: Row, reference: Row | None) -> str:
    if reference is None or row.config.system == "flowledger":
        return ""
    if row.median is None or reference.median is None or reference.median == 0:
        return ""
    return f"{row.median / reference.median:.2f}"


def print_table(bench: Bench, versions: dict[str, str]) -> None:
    reference: dict[tuple[str, str, str], Row] = {}
    for row in bench.rows:
        if row.config.system == "flowledger":
            reference[(row.config.backend, row.config.level, row.workload)] = row
    print()
    print(f"median of {bench.args.repeat} runs, each measurement in a fresh process"
          f"{' (--quick sizes)' if bench.args.quick else ''}; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print("ratio = peer value / value of the flowledger row on the same backend and "
          "synchronous level (µs, ms, MiB: >1 means flowledger is lower; wf/s: <1 means "
          "flowledger is faster)\n")
    headers = ["system", "backend", "durability", "workload", "median", "unit", "ratio", "notes"]
    lines = []
    order = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
    for row in sorted(bench.rows, key=lambda r: (order[r.workload[0]],
                                                 r.config.backend, r.config.level,
                                                 r.config.system != "flowledger")):
        ref = reference.get((row.config.backend, row.config.level, row.workload))
        if row.na or row.median is None:
            value, ratio = "n/a", ""
            notes = row.na
        else:
            value = f"{row.median:,.1f}" if row.median < 1000 else f"{row.median:,.0f}"
            ratio = ratio_text(row, ref)
            notes = row.note_text()
        lines.append([row.config.system, row.config.backend, row.config.durability,
                      row.workload, value, row.unit, ratio, notes])
    widths = [max(len(str(x[i])) for x in [headers, *lines]) for i in range(len(headers))]
    right = {4, 6}
    def fmt(cells: list[Any]) -> str:
        return "  ".join((str(c).rjust(w) if i in right else str(c).ljust(w))
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
    print(fmt(headers))
    print(fmt(["-" * w for w in widths]))
    previous = ""
    for line in lines:
        if previous and line[3][0] != previous:
            print()
        previous = line[3][0]
        print(fmt(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help="comma-separated subset of " + ",".join(ALL_SYSTEMS))
    parser.add_argument("--postgres", default=os.environ.get(
        "FLOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin URL of the server on which fresh databases are created and dropped")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--cache-dir", default="~/.cache/flowledger-bench")
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(ALL_SYSTEMS)
    if unknown:
        parser.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    if "flowledger" not in systems:
        print("[note] flowledger not selected: no ratios", file=sys.stderr)

    bench = Bench(args)
    versions = {}
    for system in systems:
        python = ensure_venv(system, bench.cache)
        versions[system] = package_version(python, VERSION_OF[system])
    pg_systems = [] if args.no_postgres else [s for s in systems if s in ("flowledger", "dbos")]
    started = time.perf_counter()
    try:
        if pg_systems:
            bench.create_databases(pg_systems)
        for config in configs(systems, postgres=bool(pg_systems)):
            bench.measure(config)
    finally:
        try:
            bench.drop_databases()
        finally:
            bench.cleanup()
    print_table(bench, versions)
    print(f"\n(total wall time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
