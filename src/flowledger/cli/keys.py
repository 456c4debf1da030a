"""flowledger keys generate | rotate | status | shred: encryption at rest."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..encryption import ENV_KEYS, Keyring
from .app import app, command
from .commands import AsJson, state_of

keys_app = typer.Typer(
    help=f"Encryption at rest: keys, rotation, status and crypto-shredding ({ENV_KEYS}).",
    no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@command("generate", keys_app)
def keys_generate_command(
    ctx: typer.Context,
    key_id: Annotated[str | None, typer.Option(
        "--id", help="The new key's id (default: a random one). Letters, digits, '.', "
                     "'_' and '-'.")] = None,
) -> None:
    """Print a new key entry (id:BASE64KEY) for FLOWLEDGER_ENCRYPTION_KEYS.

    Put it first in the variable to make it the primary key; keep the old entries after
    it until `flowledger keys rotate` has re-encrypted what they protect.
    """
    entry = Keyring.generate(key_id)
    typer.echo(entry)
    del ctx


@command("rotate", keys_app)
def keys_rotate_command(
    ctx: typer.Context,
    batch: Annotated[int, typer.Option(help="Rows re-encrypted per transaction.",
                                       min=1)] = 500,
    as_json: AsJson = False,
) -> None:
    """Re-encrypt every payload with the primary key (the first in FLOWLEDGER_ENCRYPTION_KEYS).

    Runs in short batches while workers keep running; interrupted, it is run again and
    goes on. Payloads written before encryption was on are encrypted too.
    """
    state = state_of(ctx)
    seen: dict[str, int] = {}

    def progress(column: str, count: int) -> None:
        seen[column] = seen.get(column, 0) + count
        if not as_json:
            state.err.print(f"  {column}: {seen[column]} re-encrypted", highlight=False)

    report = state.ledger.rotate_keys(batch=batch, progress=progress)
    if as_json:
        state.print_json(report.to_dict())
        return
    state.out.print(f"{report.total} payloads now encrypted with key {report.primary}"
                    + (f" ({report.sealed} were plaintext)" if report.sealed else "")
                    + (f"; {report.artifacts} artifact contents" if report.artifacts else "")
                    + (f"; {report.shredded} shredded payloads reduced to a marker"
                       if report.shredded else ""))


@command("status", keys_app)
def keys_status_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """How many payloads each key still protects, and the owner keys."""
    state = state_of(ctx)
    status = state.ledger.key_status()
    if as_json:
        state.print_json(status.to_dict())
        return
    keys = sorted(status.by_key, key=lambda k: (k != status.primary, k))
    table = Table("payloads", *[_key_label(k, status.primary, status.key_ids) for k in keys],
                  box=None)
    for column, counts in sorted(status.by_column.items()):
        table.add_row(column, *[str(counts.get(k, 0)) for k in keys])
    if status.artifacts:
        table.add_row("artifact contents", *[str(status.artifacts.get(k, 0)) for k in keys])
    table.add_row("[bold]all[/bold]", *[f"[bold]{status.by_key[k]}[/bold]" for k in keys])
    held = ", ".join(status.key_ids) or "none (encryption is off)"
    state.out.print(f"keyring: {held}" + (f" (primary {status.primary})"
                                           if status.primary else ""), highlight=False)
    state.show(table, empty=not status.by_key, nothing="no payloads recorded yet")
    if status.owner_keys:
        owners = Table("owner key", "owner", "created", "shredded", box=None)
        for key in status.owner_keys:
            owners.add_row(key["id"], key["owner"], key["created_at"],
                           key["shredded_at"] or "")
        state.out.print(owners)


def _key_label(key_id: str, primary: str | None, held: tuple[str, ...]) -> str:
    if key_id == "":
        return "plaintext"
    if key_id == "!shredded":
        return "shredded"
    if key_id not in held:
        return f"{key_id} (not in keyring!)"
    return f"{key_id} (primary)" if key_id == primary else key_id


@command("shred", keys_app)
def keys_shred_command(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option(help="The owner whose payloads to make unreadable.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase an owner's keys: their payloads become unreadable forever.

    Their runs remain (names, statuses, timings, usage and cost), shown as shredded.
    Needs per-owner keys (FLOWLEDGER_ENCRYPTION_PER_OWNER=1) when the data was written.
    """
    state = state_of(ctx)
    if not yes:
        typer.confirm(f"Make every payload of owner {owner!r} unreadable forever?",
                      abort=True)
    report = state.ledger.shred_owner(owner)
    if report.keys:
        state.out.print(f"shredded owner {owner}: {report.keys} key(s) erased; the payloads "
                        "they sealed can never be read again", highlight=False)
    else:
        state.out.print(f"owner {owner} was shredded already: no live key to erase",
                        highlight=False)
    if report.unreached:
        state.err.print(f"warning: {report.unreached} payloads of {owner} are not sealed "
                        "with an owner key (written without per-owner keys, or before "
                        "encryption was on) and stay readable; purge those runs to remove "
                        "them", style="yellow")
