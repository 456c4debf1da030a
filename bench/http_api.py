"""The HTTP API under load: requests/s and p50 / p99 latency of reading runs.

Fills a store with N runs (default 100,000) of a few steps each, all owned by one owner
(``bench``), creates an API token for that owner, and starts the real server in a
separate process (``python -m flowledger --db URL serve --port PORT``, access log off,
default redaction). Then, for 1, 8 and 32 concurrent clients (asyncio + httpx, one
``AsyncClient`` with one keep-alive connection per client, each sending its next request
as soon as the previous one is answered), each for a fixed time after a warm-up:

- ``GET /api/v1/runs/{id}`` of a run picked at random among the N (run, steps, artifacts),
- the same with ``If-None-Match`` set to that run's ETag: answered 304 (unchanged),
- ``GET /api/v1/runs/{id}`` of one run of 1,000 steps,
- ``GET /api/v1/runs?limit=50``, the first page,
- ``GET /api/v1/runs?limit=50&cursor=…``, a page half-way through the store, whose cursor
  is found by following ``next_cursor`` from the first page (that walk is timed too),
- and for reference ``GET /api/v1/healthz`` (no token check, no database): the cost of
  the HTTP stack alone. Every other row's throughput is also given as a ratio of it
  (same store, same number of clients, same invocation), next to the issue's targets.

For each: successful requests/s, p50 / p99 latency, errors, the CPU time per request
spent by the server process, by PostgreSQL (all its processes, from /proc) and by this
load generator, the database sessions the server opened per 1,000 requests (PostgreSQL's
``pg_stat_database.sessions``), how busy the cores were and how much of that was other
processes (figures are comparable only when that is near 0%). The load generator runs on
the same machine as the server and the database, so the figures are a lower bound.

PostgreSQL: a fresh database on the server named by ``--postgres``, dropped afterwards.
``--sqlite`` adds the same measurements on a temporary SQLite file.

    .venv/bin/python bench/http_api.py [--runs 100000] [--clients 1,8,32] [--seconds 5]
        [--warmup 1] [--sqlite] [--postgres URL]

(Not ``bench/http.py``: a script's folder comes first on ``sys.path``, so a file named
``http.py`` here would hide the standard library's ``http`` from every benchmark in it.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

import flowledger as fl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the bench package is importable
from bench.scale import Payloads, synthetic_batches  # noqa: E402

STEPS = 5
LONG = 1000
OWNER = "bench"
#: The issue's targets for 8 clients: (row label, minimum ratio of /healthz's req/s).
RATIO_TARGETS = {"GET /runs/{id} (random run)": 0.5, "GET /runs?limit=50 (first page)": 0.35,
                 "GET /runs?limit=50 (page": 0.35, "GET /runs/{id} answered 304": 0.8}
PAGE = 50
TICKS = os.sysconf("SC_CLK_TCK")


# -- the store ---------------------------------------------------------------------------

def fill(ledger: fl.Ledger, runs: int) -> tuple[list[str], int]:
    """Bulk-load ``runs`` runs of up to ``STEPS`` steps, all owned by ``OWNER`` (the rows
    ``bench/scale.py`` makes, with JSON payloads); returns their ids and the number of
    steps written."""
    run_ids: list[str] = []
    step_count = 0
    payloads = Payloads(inputs='{"n": 1, "text": "hello"}', output='{"answer": 42}',
                        step_input='{"i": 1}', step_output='{"value": 1}')
    for run_rows, step_rows in synthetic_batches(runs, steps=STEPS, owners=[OWNER],
                                                 payloads=payloads):
        ledger.store.load_records(run_rows, step_rows)
        run_ids += [str(row["id"]) for row in run_rows]
        step_count += len(step_rows)
    return run_ids, step_count


def prepare(url: str, runs: int) -> tuple[list[str], str, str, str]:
    """Fill the store (and one run of 1,000 steps), analyze it, create the token; (run
    ids, the long run's id, token, fill summary)."""
    with fl.Ledger(url, durability="normal") as ledger:
        started = time.perf_counter()
        run_ids, steps = fill(ledger, runs)
        elapsed = time.perf_counter() - started
        long_rows, long_steps = next(synthetic_batches(
            1, steps=LONG, owners=[OWNER], span_days=60,
            payloads=Payloads(step_input='{"i": 1}', step_output='{"value": 1}')))
        long_rows[0] |= {"status": "completed", "total_steps": LONG,
                         "completed_steps": LONG, "failed_steps": 0}
        ledger.store.load_records(long_rows, long_steps)
        long_id = str(long_rows[0]["id"])
        if ledger.store.backend.name == "postgresql":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        else:
            ledger.store.backend._hot.execute("ANALYZE")  # type: ignore[attr-defined]
        token = ledger.create_token(OWNER, note="bench/http_api.py").secret
    return (run_ids, long_id, token,
            f"{runs:,} runs / {steps:,} steps loaded in {elapsed:.1f} s")


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    database = f"flowledger_bench_http_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + database
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# -- the server --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log: Path
    base: str
    # PostgreSQL: a connection of ours (opened once) to count the server's new sessions.
    stats: psycopg.Connection[Any] | None


def start_server(url: str, workdir: Path) -> Server:
    port = free_port()
    log = workdir / f"serve-{port}.stderr"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "--db", url, "--quiet", "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/api/v1/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"server did not answer /api/v1/healthz:\n{log.read_text()}")
        time.sleep(0.1)
    stats = psycopg.connect(url, autocommit=True) if url.startswith("postgresql") else None
    return Server(proc, log, base, stats)


def stop_server(server: Server, problems: list[str]) -> None:
    if server.stats is not None:
        server.stats.close()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        code = server.proc.wait()
    text = server.log.read_text().strip()
    # uvicorn re-raises the SIGTERM it caught once it has shut down gracefully.
    if code not in (0, -signal.SIGTERM) or text:
        problems.append(f"server: exit {code}\n{text}")


# -- CPU accounting (Linux /proc) ----------------------------------------------------------

def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_cpu() -> float | None:
    """CPU seconds of every visible PostgreSQL process, plus those its postmaster reaped
    (backends that exited); None if none is visible."""
    total = 0
    seen = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            fields = _stat_fields(entry)
        except OSError:
            continue
        seen = True
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / TICKS if seen else None


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / TICKS, total / TICKS


def postgres_sessions(conn: psycopg.Connection[Any] | None) -> int | None:
    """Sessions ever opened on the database ``conn`` is connected to (PostgreSQL 14+)."""
    if conn is None:
        return None
    row = conn.execute("SELECT sessions FROM pg_stat_database "
                       "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row and row[0] is not None else None


@dataclass
class CpuSnapshot:
    server: float
    db: float | None
    client: float
    busy: float
    total: float
    sessions: int | None

    @classmethod
    def take(cls, server: Server) -> CpuSnapshot:
        sessions = postgres_sessions(server.stats)
        busy, total = machine_busy()
        db = postgres_cpu() if server.stats is not None else None
        return cls(process_cpu(server.proc.pid), db, time.process_time(), busy, total,
                   sessions)


def quiet_check(seconds: float = 2.0) -> float:
    """Share of all cores busy while this benchmark does nothing."""
    busy, total = machine_busy()
    time.sleep(seconds)
    busy2, total2 = machine_busy()
    return (busy2 - busy) / max(total2 - total, 1e-9)


# -- the load ----------------------------------------------------------------------------

@dataclass
class Result:
    backend: str
    request: str
    clients: int
    requests: int
    seconds: float
    latencies: list[float]  # ms, successful requests
    errors: Counter[str]
    server_cpu: float
    db_cpu: float | None
    client_cpu: float
    busy: float  # share of all cores busy, 0-1
    other: float  # share of all cores busy with none of server, database, load generator
    sessions: int | None  # database sessions opened while measuring

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds  # successful requests

    def per_request(self, cpu: float | None) -> str:
        return f"{cpu / max(self.requests, 1) * 1000:.2f}" if cpu is not None else "-"


@dataclass
class Scenario:
    label: str
    path: Callable[[], str]
    headers: Callable[[str], dict[str, str]] | None = None  # from the path
    expect: int = 200


async def _phase(clients: list[httpx.AsyncClient], seconds: float,
                 scenario: Scenario) -> tuple[int, list[float], Counter[str], float]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def one_client(client: httpx.AsyncClient) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            path = scenario.path()
            headers = scenario.headers(path) if scenario.headers else None
            try:
                response = await client.get(path, headers=headers)
                await response.aread()
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                count += 1
                continue
            count += 1
            if response.status_code == scenario.expect:
                latencies.append((time.perf_counter() - began) * 1000)
            else:
                errors[f"HTTP {response.status_code}"] += 1

    await asyncio.gather(*(one_client(client) for client in clients))
    return count, latencies, errors, time.perf_counter() - started


async def _measure(server: Server, token: str, clients: int, warmup: float, seconds: float,
                   scenario: Scenario) -> tuple[int, list[float], Counter[str], float,
                                                CpuSnapshot, CpuSnapshot]:
    # One AsyncClient of one keep-alive connection per simulated client: a single client
    # with a pool of 32 connections costs ~4x the CPU per request in httpcore's pool (and
    # triples the p99), which on 2 cores is taken from the server.
    async with AsyncExitStack() as stack:
        pool = [await stack.enter_async_context(httpx.AsyncClient(
            base_url=server.base, limits=httpx.Limits(max_connections=1), timeout=60,
            headers={"Authorization": f"Bearer {token}"})) for _ in range(clients)]
        await _phase(pool, warmup, scenario)
        before = CpuSnapshot.take(server)
        count, latencies, errors, elapsed = await _phase(pool, seconds, scenario)
        after = CpuSnapshot.take(server)
    return count, latencies, errors, elapsed, before, after


def measure(backend: str, scenario: Scenario, server: Server, token: str, clients: int,
            warmup: float, seconds: float) -> Result:
    label = scenario.label
    count, latencies, errors, elapsed, before, after = asyncio.run(
        _measure(server, token, clients, warmup, seconds, scenario))
    db = (after.db - before.db) if after.db is not None and before.db is not None else None
    cores = max(after.total - before.total, 1e-9)
    busy = (after.busy - before.busy) / cores
    ours = (after.server - before.server) + (db or 0) + (after.client - before.client)
    sessions = (after.sessions - before.sessions
                if after.sessions is not None and before.sessions is not None else None)
    result = Result(backend, label, clients, count, elapsed, latencies, errors,
                    after.server - before.server, db, after.client - before.client, busy,
                    max(0.0, (after.busy - before.busy - ours) / cores), sessions)
    print(f"  {label:<34} {clients:>3} clients: {result.rate:>7,.0f} req/s"
          + (f", {sum(errors.values())} errors {dict(errors)}" if errors else ""), flush=True)
    return result


def deep_cursor(server: Server, token: str, pages: int) -> tuple[str, float]:
    """Follow ``next_cursor`` from the first page for ``pages`` pages (checking that no run
    comes twice); the cursor reached and the walk's pages/s."""
    seen: set[str] = set()
    cursor: str | None = None
    started = time.perf_counter()
    with httpx.Client(base_url=server.base, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(pages):
            params: dict[str, str | int] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            response = client.get("/api/v1/runs", params=params)
            response.raise_for_status()
            body = response.json()
            seen.update(run["id"] for run in body["runs"])
            cursor = body["next_cursor"]
            if cursor is None:
                raise RuntimeError("the listing ended before the deep page")
    if cursor is None or len(seen) != pages * PAGE:
        raise RuntimeError(f"{pages} pages of {PAGE} gave {len(seen)} distinct runs")
    return cursor, pages / (time.perf_counter() - started)


def run_etags(server: Server, token: str, run_ids: list[str]) -> dict[str, str]:
    """The ETag of each of these runs, as the server answers it."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
        return {run_id: client.get(f"/api/v1/runs/{run_id}").headers["etag"]
                for run_id in run_ids}


def sanity_check(server: Server, token: str, run_ids: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    run = httpx.get(f"{server.base}/api/v1/runs/{run_ids[0]}", headers=headers, timeout=30)
    run.raise_for_status()
    assert run.json()["id"] == run_ids[0] and run.json()["steps"], run.text[:500]
    page = httpx.get(f"{server.base}/api/v1/runs", params={"limit": PAGE}, headers=headers,
                     timeout=30)
    page.raise_for_status()
    assert len(page.json()["runs"]) == PAGE, page.text[:500]
    assert page.json()["runs"][0]["id"] == run_ids[-1]  # newest first


def bench_backend(backend: str, url: str, args: argparse.Namespace, workdir: Path,
                  problems: list[str], notes: list[str]) -> list[Result]:
    print(f"\n{backend}: filling the store…", flush=True)
    run_ids, long_id, token, summary = prepare(url, args.runs)
    notes.append(f"{backend}: {summary}")
    print(f"{backend}: {summary}; starting the server", flush=True)
    server = start_server(url, workdir)
    results: list[Result] = []
    try:
        idle = quiet_check()
        print(f"{backend}: {idle:.0%} of the cores busy with the server idle", flush=True)
        if idle > 0.1:
            notes.append(f"{backend}: WARNING the machine was {idle:.0%} busy before "
                         "measuring (other processes): figures are low")
        sanity_check(server, token, run_ids)
        pages = max(1, args.runs // PAGE // 2)
        cursor, pages_per_s = deep_cursor(server, token, pages)
        notes.append(f"{backend}: following next_cursor through {pages:,} pages of {PAGE} "
                     f"(one client): {pages_per_s:,.0f} pages/s")
        rng = random.Random(11)
        sample = rng.sample(run_ids, min(2000, len(run_ids)))
        etags = run_etags(server, token, sample)

        def random_run() -> str:
            return f"/api/v1/runs/{rng.choice(sample)}"

        scenarios = [
            Scenario("GET /healthz (HTTP stack only)", lambda: "/api/v1/healthz"),
            Scenario("GET /runs/{id} (random run)", random_run),
            Scenario("GET /runs/{id} answered 304", random_run,
                     lambda path: {"If-None-Match": etags[path.rsplit("/", 1)[1]]}, 304),
            Scenario(f"GET /runs/{{id}} ({LONG:,} steps)", lambda: f"/api/v1/runs/{long_id}"),
            Scenario(f"GET /runs?limit={PAGE} (first page)", lambda: f"/api/v1/runs?limit={PAGE}"),
            Scenario(f"GET /runs?limit={PAGE} (page {pages + 1:,})",
                     lambda: f"/api/v1/runs?limit={PAGE}&cursor={cursor}"),
        ]
        for scenario in scenarios:
            for clients in args.clients:
                results.append(measure(backend, scenario, server, token, clients,
                                       args.warmup, args.seconds))
    finally:
        stop_server(server, problems)
    return results


def _p50(r: Result) -> float:
    return statistics.median(r.latencies) if r.latencies else float("nan")


def _p99(r: Result) -> float:
    if len(r.latencies) < 2:
        return _p50(r)
    return statistics.quantiles(r.latencies, n=100, method="inclusive")[98]


def targets(results: list[Result], health: dict[tuple[str, int], float]) -> list[str]:
    """Each target of the read-path issue, with the figure measured and whether it holds."""
    lines = []

    def check(backend: str, what: str, value: float, limit: float, at_least: bool,
              unit: str = "") -> None:
        held = value >= limit if at_least else value <= limit
        lines.append(f"{backend:<11} {what:<52} {value:>8.2f}{unit} "
                     f"(target {'≥' if at_least else '≤'} {limit:g}{unit}): "
                     f"{'reached' if held else 'NOT reached'}")

    for r in results:
        if r.clients == 8:
            for label, limit in RATIO_TARGETS.items():
                if r.request.startswith(label):
                    ratio = r.rate / max(health.get((r.backend, 8), 0), 1e-9)
                    check(r.backend, f"{r.request}, 8 clients", ratio, limit, True, "x")
        if r.clients == 1 and r.request.startswith("GET /runs/{id} (random"):
            check(r.backend, "GET /runs/{id} p50, 1 client", _p50(r), 3, False, " ms")
        if r.clients == 1 and r.request.startswith(f"GET /runs/{{id}} ({LONG:,}"):
            check(r.backend, f"GET /runs/{{id}} of {LONG:,} steps p50, 1 client", _p50(r),
                  25, False, " ms")
        if r.clients == 8 and r.request.startswith("GET /runs/{id} (random"):
            check(r.backend, "server CPU per GET /runs/{id}, 8 clients",
                  r.server_cpu / max(r.requests, 1) * 1000, 1.5, False, " ms")
    return lines


def report(results: list[Result], args: argparse.Namespace, notes: list[str],
           problems: list[str]) -> None:
    print(f"\n{args.runs:,} runs of up to {STEPS} steps, one owner; {args.seconds:g} s per "
          f"row after {args.warmup:g} s of warm-up; {os.cpu_count()} cores shared by the "
          "load generator, the server and the database\n")
    health = {(r.backend, r.clients): r.rate for r in results
              if r.request.startswith("GET /healthz")}
    print(f"{'store':<11} {'request':<34} {'clients':>7} {'req/s':>7} {'x healthz':>9}"
          f" {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}   {'CPU ms/request: server':>22}"
          f" {'db':>5} {'client':>6}  {'new db sessions':>15}  {'cores busy (other)':>18}")
    for r in results:
        sessions = (f"{r.sessions / max(r.requests, 1) * 1000:,.0f} per 1k req"
                    if r.sessions is not None else "-")
        ratio = r.rate / max(health.get((r.backend, r.clients), 0), 1e-9)
        print(f"{r.backend:<11} {r.request:<34} {r.clients:>7} {r.rate:>7,.0f} {ratio:>9.2f}"
              f" {_p50(r):>7.2f} {_p99(r):>7.2f} {sum(r.errors.values()):>6}"
              f"   {r.per_request(r.server_cpu):>22} {r.per_request(r.db_cpu):>5}"
              f" {r.per_request(r.client_cpu):>6}  {sessions:>15}  {r.busy:>11.0%}"
              f" ({r.other:.0%})")
    print()
    for line in targets(results, health):
        print(line)
    print()
    for note in notes:
        print(note)
    for problem in problems:
        print(f"\nPROBLEM {problem}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", default="1,8,32",
                        help="comma-separated numbers of concurrent clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up time per row")
    parser.add_argument("--sqlite", action="store_true", help="also measure on SQLite")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--postgres", default=os.environ.get(
        "FLOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server to create (and drop) a fresh database on")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    if args.runs < 2 * PAGE or not args.clients or min(args.clients) < 1:
        parser.error(f"--runs must be at least {2 * PAGE} and --clients positive numbers")
    results: list[Result] = []
    notes: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.no_postgres:
            with postgres_database(args.postgres) as url:
                results += bench_backend("PostgreSQL", url, args, workdir, problems, notes)
        if args.sqlite:
            results += bench_backend("SQLite", f"sqlite:///{tmp}/http.db", args, workdir,
                                     problems, notes)
    report(results, args, notes, problems)


if __name__ == "__main__":
    main()
