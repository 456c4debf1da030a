"""`flowledger otel export`: recorded runs sent as OpenTelemetry traces, after the fact."""

from __future__ import annotations

from typing import Annotated

import typer

from ..validation import when as parse_when
from .app import app, command
from .commands import AsJson, state_of

otel_app = typer.Typer(help="OpenTelemetry traces of recorded runs (docs/tracing.md).",
                       no_args_is_help=True)
app.add_typer(otel_app, name="otel")


@command("export", otel_app)
def otel_export_command(
    ctx: typer.Context,
    run_ids: Annotated[list[str] | None, typer.Argument(
        metavar="[RUN_ID]...", help="Runs to export (ids or unambiguous prefixes), with "
                                    "their child runs.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Also export the runs that ended since then: a duration ago (1h, 2d) or an "
             "ISO date/time.")] = None,
    as_json: AsJson = False,
) -> None:
    """Send recorded runs as spans to the OTLP endpoint of the OTEL_* environment
    variables, with their recorded times: runs executed without telemetry, or whose
    process died before its spans left. The ids are derived from the records, so a
    run exported again (or already traced live) gets the same ids."""
    state = state_of(ctx)
    sent = state.ledger.export_traces(run_ids or (), since=parse_when(since))
    if as_json:
        state.print_json({"runs": sent.runs, "spans": sent.spans})
        return
    state.out.print(f"exported {sent.spans} spans of {sent.runs} runs")
