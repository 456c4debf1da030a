"""flowledger rate-limit set | ls | rm: named limits shared by every worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from ..errors import RateLimitNotFound
from ..rates import parse_rate
from . import render
from .app import app, command
from .commands import AsJson, state_of

rate_app = typer.Typer(help="Named rate limits that steps share across every worker.",
                       no_args_is_help=True)
app.add_typer(rate_app, name="rate-limit")


@command("set", rate_app)
def rate_limit_set_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The limit's name (what steps name).")],
    rate: Annotated[str, typer.Argument(help="Units per period: 500/min, 100/s, 10/h.")],
    burst: Annotated[int, typer.Option(
        help="Units that may start at once after a quiet spell (default 1: evenly "
             "spaced).")] = 1,
) -> None:
    """Create or change a named rate limit."""
    units, period_us = parse_rate(rate)
    state = state_of(ctx, creates=True)
    limit = state.ledger.set_rate_limit(name, units, per=timedelta(microseconds=period_us),
                                        burst=burst)
    state.out.print(f"{limit.name}: {limit.rate} (burst {limit.burst})")


@command("ls", rate_app)
def rate_limit_ls_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the named rate limits."""
    state = state_of(ctx)
    found = state.ledger.rate_limits()
    if as_json:
        state.print_json([{"name": r.name, "rate": r.rate, "limit": r.limit,
                           "per_seconds": r.per.total_seconds(), "burst": r.burst,
                           "updated_at": r.updated_at.isoformat() if r.updated_at else None}
                          for r in found])
        return
    table = Table("name", "rate", "burst", "updated", box=None)
    for r in found:
        table.add_row(r.name, r.rate, str(r.burst), render.when(r.updated_at))
    state.show(table, empty=not found,
               nothing="no rate limits (set one with: flowledger rate-limit set NAME 100/s)")


@command("rm", rate_app)
def rate_limit_rm_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The limit to remove.")],
) -> None:
    """Remove a named rate limit (steps that name it then fail until it is set again)."""
    state = state_of(ctx)
    if not state.ledger.remove_rate_limit(name):
        raise RateLimitNotFound(f"no rate limit named {name!r}")
    state.out.print(f"removed rate limit {name}")
