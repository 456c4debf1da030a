"""Commands for workflow specs: validate a file, print the JSON Schema, and register,
list, show and remove the specs kept in the ledger."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import app, command
from .commands import AsJson, spec_file, state_of

spec_app = typer.Typer(help="Workflow specs: the JSON Schema, and specs registered in the "
                            "ledger (register, list, show, remove).", no_args_is_help=True)
app.add_typer(spec_app, name="spec")

SpecFile = Annotated[Path, typer.Argument(help="A spec file (.yaml, .yml or .json).",
                                          dir_okay=False)]
Version = Annotated[str | None, typer.Option(help="One version (default: the newest).")]
Owner = Annotated[str | None, typer.Option(
    help="The owner whose spec it is (default: default; `spec ls` shows every owner's).")]


@command("validate")
def validate_command(
    files: Annotated[list[str], typer.Argument(help="Spec files to check.",
                                                metavar="FILE...")],
    as_json: AsJson = False,
) -> None:
    """Check spec files: exit 0 when all are valid, else print each problem as
    file:line:column path: message and exit 2."""
    from ..specs import SpecError, load_spec  # noqa: PLC0415 (start-up time)

    problems: list[str] = []
    checked = []
    for file in files:
        try:
            spec = load_spec(file)
        except SpecError as exc:
            problems.extend(str(problem) for problem in exc.problems)
            checked.append({"file": str(file), "valid": False, "problems": [
                {"line": p.line, "column": p.column, "path": p.path, "message": p.message}
                for p in exc.problems]})
            continue
        checked.append({"file": str(file), "valid": True, "name": spec.name,
                        "version": spec.version, "steps": spec.step_ids})
        if not as_json:
            print(f"{file}: ok — {spec.name} version {spec.version}, "
                  f"{_count(len(spec.step_ids), 'step')} in {_count(len(spec.waves), 'wave')}")
    if as_json:
        sys.stdout.write(json.dumps(checked, indent=2) + "\n")
    for problem in problems if not as_json else ():
        print(problem, file=sys.stderr)
    if problems:
        raise typer.Exit(2)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@command("schema", spec_app)
def spec_schema_command() -> None:
    """Print the JSON Schema of the spec format (point your editor's YAML plugin at it)."""
    from ..specs import spec_schema  # noqa: PLC0415 (start-up time)

    sys.stdout.write(json.dumps(spec_schema(), indent=2) + "\n")


@command("register", spec_app)
def spec_register_command(ctx: typer.Context, file: SpecFile,
                          owner: Annotated[str | None, typer.Option(
                              help="Owner to register it for (default: default).")] = None,
                          as_json: AsJson = False) -> None:
    """Validate a spec file and register it in the ledger under its name and version."""
    state = state_of(ctx, creates=True)
    spec_file(str(file))  # problems are reported with this file's name and positions
    started = datetime.now(UTC)
    info = state.ledger.register_spec(file.read_text(encoding="utf-8"), owner=owner,
                                      file=str(file))
    fresh = info.registered_at is not None and info.registered_at >= started
    if as_json:
        state.print_json({**info.to_dict(text=False), "already_registered": not fresh})
    else:
        state.out.print(f"{'registered' if fresh else 'already registered:'} {info.name} "
                        f"version {info.version} ({info.digest[:12]}) for owner {info.owner}")


@command("ls", spec_app)
def spec_ls_command(ctx: typer.Context,
                    name: Annotated[str | None, typer.Argument(
                        help="Only the versions of this spec.")] = None,
                    as_json: AsJson = False) -> None:
    """List registered specs, newest version first."""
    state = state_of(ctx)
    found = state.ledger.specs(name)
    if as_json:
        state.print_json([info.to_dict(text=False) for info in found])
        return
    table = Table("name", "version", "digest", "owner", "registered", "steps",
                  box=None, header_style="bold")
    for info in found:
        table.add_row(info.name, info.version, info.digest[:12], info.owner,
                      info.registered_at.strftime("%Y-%m-%d %H:%M:%S")
                      if info.registered_at else "", str(len(info.steps)))
    state.out.print(table if found else "no registered specs")


@command("show", spec_app)
def spec_show_command(ctx: typer.Context,
                      name: Annotated[str, typer.Argument(help="The spec's name.")],
                      version: Version = None, owner: Owner = None,
                      as_json: AsJson = False) -> None:
    """Print a registered spec's text (newest version unless --version)."""
    state = state_of(ctx)
    info = state.ledger.spec_info(name, version, owner=owner)
    if as_json:
        state.print_json(info.to_dict())
    else:
        sys.stdout.write(info.text if info.text.endswith("\n") else info.text + "\n")


@command("rm", spec_app)
def spec_rm_command(ctx: typer.Context,
                    name: Annotated[str, typer.Argument(help="The spec's name.")],
                    version: Annotated[str | None, typer.Option(
                        help="Only this version (default: every version).")] = None,
                    owner: Owner = None) -> None:
    """Unregister a spec; runs of it keep their recorded text."""
    state = state_of(ctx)
    removed = state.ledger.unregister_spec(name, version, owner=owner)
    if not removed:
        which = name + (f" version {version}" if version else "")
        print(f"error: no registered spec {which}", file=sys.stderr)
        raise typer.Exit(3)
    state.out.print(f"unregistered {removed} version{'s' if removed != 1 else ''} of {name}")
