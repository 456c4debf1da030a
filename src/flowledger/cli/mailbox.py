"""`flowledger send-event` and `flowledger inbox`: events sent to runs."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import ConfigurationError
from ..mailbox import SentEvent
from . import render
from .app import command
from .commands import AsJson, RunId, state_of


@command("send-event")
def send_event_command(
    ctx: typer.Context,
    run_id: RunId,
    name: Annotated[str, typer.Argument(help="The event's name, as the wait names it.")],
    data: Annotated[str | None, typer.Option(
        metavar="JSON", help="The payload, as JSON (`-` reads it from standard input); "
                             "default null.")] = None,
    as_json: AsJson = False,
) -> None:
    """Send an event to a run: the `fl.wait_for_event(NAME)` it reaches (or waits at)
    receives it. Kept until then; each event is received by one wait."""
    state = state_of(ctx)
    payload = _payload(data)
    full = state.ledger.resolve_id(run_id)
    sent = state.ledger.send_event(full, name, payload)
    if as_json:
        state.print_json(sent.to_dict())
        return
    state.out.print(f"sent event {name!r} (#{sent.id}) to {full}")


@command("inbox")
def inbox_command(ctx: typer.Context, run_id: RunId, as_json: AsJson = False) -> None:
    """The events sent to a run, oldest first: delivered (to which wait), kept for a
    wait not reached yet, or refused by the wait's model."""
    state = state_of(ctx)
    found = state.ledger.sent_events(state.ledger.resolve_id(run_id))
    if as_json:
        state.print_json([sent.to_dict() for sent in found])
        return
    state.show(_table(found), empty=not found, nothing="no events sent to this run")


def _payload(data: str | None) -> Any:
    if data is None:
        return None
    text = sys.stdin.read() if data == "-" else data
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"--data must be JSON (a string is \"quoted\"): {exc}") from None


def _table(found: list[SentEvent]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("#", "event", "sent", "state", "payload"):
        table.add_column(column)
    for sent in found:
        state = (f"delivered to step {sent.consumed_position}" if sent.delivered
                 else f"[red]refused[/red]: {sent.error}" if sent.error
                 else "[yellow]kept[/yellow] for its wait")
        shown = json.dumps(sent.payload)
        table.add_row(str(sent.id), sent.name, render.when(sent.sent_at), state,
                      shown if len(shown) <= 60 else shown[:59] + "…")
    return table
