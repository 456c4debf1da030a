"""`flowledger logs`: what a run's steps logged, attempt by attempt (``--follow`` waits
for more until the run ends)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from . import render
from .app import command
from .commands import AsJson, RunId, state_of

_ENDS_ATTEMPT = ("step.retrying", "step.completed", "step.failed", "step.skipped")


@command("logs")
def logs_command(
    ctx: typer.Context,
    run_id: RunId,
    step: Annotated[int | None, typer.Option(
        "--step", metavar="N", min=1, help="Only the step at this position.")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing the logs of attempts as they end, until the "
                               "run ends.")] = False,
    as_json: AsJson = False,
) -> None:
    """What a run's steps logged (`logging`, and `print` when captured), under the step
    attempt that logged it. An attempt's records are written when it ends. With `--json`,
    a list of attempts; with `--json --follow`, one attempt per line (JSON Lines)."""
    state = state_of(ctx)
    full = state.ledger.resolve_id(run_id)
    if as_json and not follow:
        state.print_json([a.to_dict() for a in state.ledger.logs(full, step=step)])
        return
    seen: set[tuple[int, int]] = set()

    def show_new() -> int:
        fresh = [a for a in state.ledger.logs(full, step=step)
                 if (a.position, a.attempt) not in seen]
        seen.update((a.position, a.attempt) for a in fresh)
        if as_json:
            for attempt in fresh:
                sys.stdout.write(json.dumps(attempt.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif fresh:
            state.out.print(render.logs_view(fresh))
        return len(fresh)

    shown = show_new()
    if follow:
        for event in state.ledger.watch(full):
            if event.type in _ENDS_ATTEMPT and (step is None or event.position == step):
                shown += show_new()
        shown += show_new()
    if not shown and not as_json:
        where = f"step {step} of run {full}" if step is not None else f"run {full}"
        state.hint(f"no logs recorded for {where}")
