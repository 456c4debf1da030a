"""A durable document pipeline: analyse a Python source tree and write a report.

Real work, offline: it reads every ``.py`` file under a folder (by default the standard
library's ``email`` package, present on every Python install), parses each with ``ast``,
aggregates the figures and writes ``report.json`` and ``report.md``. Every step is
recorded in the ledger, so a crash resumes where it stopped.

    python examples/codebase_report.py                     # run, then show the trace
    python examples/codebase_report.py --crash-at 5        # SIGKILL itself in step 5
    python examples/codebase_report.py --resume RUN_ID     # finish the crashed run
"""

from __future__ import annotations

import argparse
import ast
import email
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import flowledger as fl

CRASH_VARIABLE = "CODEBASE_REPORT_CRASH_AT"


def _maybe_crash() -> None:
    """For the resume demo: die like a killed process would, in the middle of a step."""
    crash_at = int(os.environ.get(CRASH_VARIABLE, "0"))
    if crash_at and fl.current_step().position == crash_at:
        print(f"!! killing this process in step {crash_at} (SIGKILL)", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


@fl.step()
def discover_files(root: str) -> list[str]:
    """Every Python file under ``root``, sorted so the run is deterministic."""
    base = Path(root)
    if not base.is_dir():
        raise fl.NonRetryable(f"{root} is not a directory")
    return sorted(str(p) for p in base.rglob("*.py") if "__pycache__" not in p.parts)


@fl.step(retries=2, backoff=0.1)
def analyze_file(path: str) -> dict[str, Any]:
    _maybe_crash()
    source = Path(path).read_bytes()
    tree = ast.parse(source, filename=path)
    imports: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports[node.module.split(".")[0]] += 1
    lines = source.decode("utf-8", errors="replace").splitlines()
    code_lines = [ln for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return {
        "path": path,
        "sha256": hashlib.sha256(source).hexdigest(),
        "lines": len(lines),
        "code_lines": len(code_lines),
        "functions": sum(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                         for n in ast.walk(tree)),
        "classes": sum(isinstance(n, ast.ClassDef) for n in ast.walk(tree)),
        "docstring": ast.get_docstring(tree) is not None,
        "imports": dict(imports),
    }


@fl.step()
def summarize(root: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    imports: Counter[str] = Counter()
    for info in files:
        imports.update(info["imports"])
    largest = sorted(files, key=lambda f: f["code_lines"], reverse=True)[:5]
    return {
        "root": root,
        "files": len(files),
        "lines": sum(f["lines"] for f in files),
        "code_lines": sum(f["code_lines"] for f in files),
        "functions": sum(f["functions"] for f in files),
        "classes": sum(f["classes"] for f in files),
        "documented_modules": sum(f["docstring"] for f in files),
        "largest": [{"path": os.path.relpath(f["path"], root), "code_lines": f["code_lines"]}
                    for f in largest],
        "most_imported": imports.most_common(5),
    }


@fl.step()
def write_report(summary: dict[str, Any], out_dir: str) -> list[str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    rows = "\n".join(f"| {f['path']} | {f['code_lines']} |" for f in summary["largest"])
    md_path = out / "report.md"
    md_path.write_text(
        f"# Code report for {summary['root']}\n\n"
        f"{summary['files']} files, {summary['code_lines']} lines of code, "
        f"{summary['functions']} functions, {summary['classes']} classes; "
        f"{summary['documented_modules']} modules have a docstring.\n\n"
        f"| largest modules | code lines |\n|---|---|\n{rows}\n"
    )
    return [str(json_path), str(md_path)]


@fl.workflow(name="codebase_report", version="1")
def codebase_report(root: str, out_dir: str) -> dict[str, Any]:
    paths = discover_files(root)
    files = fl.map_steps(analyze_file, paths, max_workers=4)
    summary = summarize(root, files)
    written = write_report(summary, out_dir)
    return {"files": summary["files"], "code_lines": summary["code_lines"], "written": written}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", default=os.path.dirname(email.__file__),
                        help="folder of Python files to analyse (default: stdlib email)")
    parser.add_argument("--out", default="examples/output", help="where to write the report")
    parser.add_argument("--crash-at", type=int, default=0, metavar="POSITION",
                        help="SIGKILL this process while the step at POSITION runs")
    parser.add_argument("--resume", metavar="RUN_ID", help="resume a crashed or failed run")
    args = parser.parse_args(argv)

    if args.crash_at:
        os.environ[CRASH_VARIABLE] = str(args.crash_at)
    with fl.Ledger() as ledger:
        print(f"ledger: {ledger.url}")
        if args.resume:
            handle = ledger.resume(args.resume)
            print(f"resuming run {handle.id}")
        else:
            handle = ledger.start(codebase_report, args.root, os.path.abspath(args.out))
            print(f"started run {handle.id}", flush=True)
        output = handle.result()
        print(f"output: {json.dumps(output)}")
    # Show the trace from a separate process: what it prints comes from the store alone.
    print(f"\n$ flowledger inspect {handle.id}")
    code = subprocess.call([sys.executable, "-m", "flowledger", "--db", ledger.url,
                            "inspect", handle.id])
    print("\nSee it in the web UI (timeline, steps, attempts): .venv/bin/flowledger ui --open\n"
          f"then open run {handle.id[:13]}.")
    return code


if __name__ == "__main__":
    sys.exit(main())
