"""`flowledger tokens`: API tokens for `flowledger serve` — create, list, revoke."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table

from ..errors import TokenNotFound
from . import render
from .app import app, command
from .commands import AsJson, state_of

tokens_app = typer.Typer(help="API tokens for `flowledger serve`: create, list, revoke.",
                         no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@command("create", tokens_app)
def tokens_create_command(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option(help="The owner whose runs the token acts on.")],
    admin: Annotated[bool, typer.Option(
        "--admin", help="See and act on every owner's runs.")] = False,
    note: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    as_json: AsJson = False,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    state = state_of(ctx, creates=True)
    created = state.ledger.create_token(owner, admin=admin, note=note)
    if as_json:
        state.print_json({"id": created.info.id, "owner": owner, "admin": admin,
                          "token": created.secret})
        return
    state.out.print(created.secret, highlight=False, soft_wrap=True)
    state.hint(f"token {created.info.id} for {owner}{' (admin)' if admin else ''}: "
               "store it now, it cannot be shown again")


@command("ls", tokens_app)
def tokens_ls_command(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: AsJson = False,
) -> None:
    """List tokens: id, owner, admin, note, created, last used (never the secret)."""
    state = state_of(ctx)
    found = state.ledger.tokens(include_revoked=show_all)
    if as_json:
        state.print_json([dataclasses.asdict(t) for t in found])
        return
    table = Table("id", "owner", "admin", "note", "created", "last used", "revoked", box=None)
    for t in found:
        table.add_row(t.id, t.owner, "yes" if t.admin else "", t.note or "",
                      render.when(t.created_at), render.when(t.last_used_at),
                      render.when(t.revoked_at) if t.revoked_at else "")
    state.show(table, empty=not found,
               nothing="no tokens (create one with: flowledger tokens create --owner NAME)")


@command("revoke", tokens_app)
def tokens_revoke_command(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (from tokens ls).")],
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    state = state_of(ctx)
    if not state.ledger.revoke_token(token_id):
        raise TokenNotFound(f"no live token with id {token_id!r}")
    state.out.print(f"revoked token {token_id}")
