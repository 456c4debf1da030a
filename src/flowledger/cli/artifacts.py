"""`flowledger artifacts`: a run's artifacts, listed and fetched."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import render
from .app import app, command
from .commands import AsJson, state_of

artifacts_app = typer.Typer(help="A run's artifacts: list them, fetch one.",
                            no_args_is_help=True)
app.add_typer(artifacts_app, name="artifacts")


@command("ls", artifacts_app)
def artifacts_ls(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or an unambiguous prefix of it.")],
    prefix: Annotated[str, typer.Option(help="Only keys starting with this.")] = "",
    as_json: AsJson = False,
) -> None:
    """List a run's artifacts: key, size, media type, producing step, time."""
    state = state_of(ctx)
    ledger = state.ledger
    found = ledger.artifacts(ledger.resolve_id(run_id)).list(prefix)
    if as_json:
        state.print_json([a.to_dict() for a in found])
        return
    state.show(render.artifacts_table(found), empty=not found,
               nothing="no artifacts" + (f" under {prefix!r}" if prefix else ""))


@command("get", artifacts_app)
def artifacts_get(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or an unambiguous prefix of it.")],
    key: Annotated[str, typer.Argument(help="The artifact's key.")],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write the content to this file instead of standard output.")]
    = None,
) -> None:
    """Write an artifact's content, byte for byte, to standard output or a file."""
    state = state_of(ctx)
    ledger = state.ledger
    content = ledger.artifacts(ledger.resolve_id(run_id)).read_bytes(key)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as sink:
        sink.write(content)
    state.hint(f"wrote {len(content):,} bytes to {output}")
