"""Run every spec example offline, on an embedded SQLite ledger, and show what was recorded.

It starts the LLM replay server (examples/llm_replay_server.py: RECORDED answers, not a
model) on a free port, waits until the port accepts connections, then runs

* agent_pipeline.yaml twice: the second run's ``cache: true`` steps are cache hits,
* content_phases.yaml, runbook.yaml (on src/flowledger) and mcp_tools.json (the MCP
  tracker server over stdio, with a fresh tracker database),

prints each run's id, status, steps, tokens and cost as ``ledger.get(run_id)`` reads them,
and stops the server. Run it from the repo root (the specs' python steps import
``examples.specs_support``; the MCP server's path is relative)::

    .venv/bin/python examples/specs/run_all.py                      # a temporary ledger
    .venv/bin/python examples/specs/run_all.py --ledger-dir .flowledger   # keep the runs

With ``--ledger-dir .flowledger`` the runs land in the default ledger, so
``.venv/bin/flowledger runs`` / ``inspect RUN_ID`` / ``ui`` show them afterwards.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flowledger as fl

SPECS = Path(__file__).resolve().parent
EXAMPLES = SPECS.parent
SERVER_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once ``port`` accepts connections; fail if the server exits or the time
    runs out. Between attempts it waits on the process itself, so an early exit is seen
    at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replay server did not open port {port} "
                               f"within {timeout:g}s")
        try:
            code = process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"the replay server exited with code {code} before listening")


@contextmanager
def replay_server() -> Iterator[int]:
    """The LLM replay server on a free port, stopped (and reaped) on exit."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(EXAMPLES / "llm_replay_server.py"),
                                "--port", str(port)])
    try:
        wait_for_port(port, process, SERVER_START_TIMEOUT)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def money(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.6f}"


def show(ledger: fl.Ledger, label: str, run_id: str) -> fl.Run:
    """Print a run as the ledger recorded it: status, steps, tokens and cost."""
    run = ledger.get(run_id)
    print(f"\n== {label}: {run.workflow} version {run.version}")
    duration = f"{run.duration.total_seconds():.2f}s" if run.duration else "-"
    print(f"   run {run.id}  status {run.status.value}  {len(run.steps)} steps  {duration}")
    for step in run.steps:
        line = f"   {step.position:>3} {step.name:<22} {step.status.value:<9}"
        if step.attempts > 1:
            line += f" attempts={step.attempts}"
        for usage in step.usage:
            if usage.cache_hit:
                line += f" {usage.model}: cache hit, cost {money(usage.cost_usd)}"
            else:
                line += (f" {usage.model}: {usage.input_tokens} in + {usage.output_tokens} "
                         f"out tokens, {money(usage.cost_usd)}")
        if step.status is fl.StepStatus.SKIPPED and step.error is not None:
            line += f" ({step.error.message[:120]})"
        elif step.error is not None:
            line += f" error: {step.error.type}: {step.error.message[:200]}"
        print(line)
    totals = run.usage or fl.UsageTotals()
    print(f"   usage: {totals.calls} LLM calls, {totals.input_tokens} input + "
          f"{totals.output_tokens} output tokens, cost {money(totals.cost_usd)}")
    if run.context:
        print(f"   context: {json.dumps(run.context)[:400]}")
    for artifact in run.artifacts:
        print(f"   artifact {artifact.key} ({artifact.media_type}, {artifact.size} bytes, "
              f"sha256 {artifact.digest[:12]})")
    if run.error is not None:
        print(f"   error: {run.error.type}: {run.error.message}")
    return run


def run_spec(ledger: fl.Ledger, file: str, inputs: dict[str, Any]) -> str:
    """Run one spec to its end (in this thread); the new run's id, failed or not."""
    spec = fl.load_spec(SPECS / file)
    try:
        output = ledger.run(spec, **inputs)
    except fl.RunFailed as exc:
        return exc.run_id
    text = json.dumps(output, ensure_ascii=False)
    print(f"\n-- {file} output: {text[:600]}{' …' if len(text) > 600 else ''}")
    return ledger.runs(workflow=spec.name, limit=1).runs[0].id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ledger-dir", type=Path,
                        help="keep the ledger here (e.g. .flowledger); default: a temp dir")
    args = parser.parse_args(argv)
    if not (Path.cwd() / "examples" / "specs_support").is_dir():
        parser.error("run this from the repository root (python steps import "
                     "examples.specs_support)")
    with tempfile.TemporaryDirectory(prefix="flowledger-specs-") as temp:
        folder = args.ledger_dir.resolve() if args.ledger_dir else Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'flowledger.db'}"
        print(f"ledger: {url}")
        runs: list[tuple[str, str]] = []
        with replay_server() as port, fl.Ledger(url) as ledger:
            print(f"LLM replay server (recorded answers) on 127.0.0.1:{port}")
            llm = {"openai_base_url": f"http://127.0.0.1:{port}/v1",
                   "anthropic_base_url": f"http://127.0.0.1:{port}"}
            plan: list[tuple[str, str, dict[str, Any]]] = [
                ("agent pipeline", "agent_pipeline.yaml", llm),
                ("agent pipeline again (cache hits)", "agent_pipeline.yaml", llm),
                ("content phases", "content_phases.yaml", {"topic": "durable workflows"}),
                ("runbook", "runbook.yaml", {"path": "src/flowledger"}),
                ("MCP tools", "mcp_tools.json",
                 {"tracker_db": str(Path(temp) / "tracker.json"), "issue": 3}),
            ]
            for label, file, inputs in plan:
                runs.append((label, run_spec(ledger, file, inputs)))
            print("\n" + "=" * 78)
            failed = [label for label, run_id in runs
                      if show(ledger, label, run_id).status is not fl.RunStatus.COMPLETED]
        print()
        if failed:
            print(f"not completed: {', '.join(failed)}")
            return 1
        print(f"all {len(runs)} runs completed"
              + ("" if args.ledger_dir else " (temporary ledger, now removed)"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
