"""`flowledger webhooks`: subscriptions to run events — add, list, enable, disable,
remove — and their deliveries: list, show the attempts of one, send one again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..webhooks import DEFAULT_EVENTS, EVENTS
from . import render
from .app import app, command
from .commands import AsJson, state_of

webhooks_app = typer.Typer(help="Webhooks: signed HTTP calls to your URLs when runs "
                                "complete, fail, are cancelled or paused.",
                           no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
WebhookArg = Annotated[str, typer.Argument(metavar="ID", help="A webhook id (webhooks ls).")]


@command("add", webhooks_app)
def webhooks_add_command(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where to POST deliveries (http:// or "
                                            "https://, a public address).")],
    event: Annotated[list[str] | None, typer.Option(
        "--event", metavar="EVENT",
        help=f"An event to send ({', '.join(EVENTS)}); repeatable (default: "
             f"{' and '.join(DEFAULT_EVENTS)}).")] = None,
    as_json: AsJson = False,
) -> None:
    """Subscribe a URL to run events of your runs and print its signing secret once."""
    state = state_of(ctx, creates=True)
    hook = state.ledger.add_webhook(url, event or DEFAULT_EVENTS)
    if as_json:
        state.print_json(hook.to_dict())
        return
    state.out.print(hook.secret, highlight=False, soft_wrap=True)
    state.hint(f"webhook {hook.id} → {hook.url} ({', '.join(hook.events)}): the line above "
               "is its signing secret; store it now, it cannot be shown again")


@command("ls", webhooks_app)
def webhooks_ls_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List webhooks: id, URL, events, enabled, created (never the secret)."""
    state = state_of(ctx)
    found = state.ledger.webhooks()
    if as_json:
        state.print_json([hook.to_dict() for hook in found])
        return
    table = Table("id", "url", "events", "enabled", "owner", "created", box=None)
    for hook in found:
        table.add_row(hook.id, hook.url, ", ".join(hook.events),
                      "yes" if hook.enabled else "no", hook.owner, render.when(hook.created_at))
    state.show(table, empty=not found,
               nothing="no webhooks (add one with: flowledger webhooks add URL)")


@command("rm", webhooks_app)
def webhooks_rm_command(ctx: typer.Context, webhook_id: WebhookArg) -> None:
    """Delete a webhook with its deliveries (unsent ones are never sent)."""
    state = state_of(ctx)
    state.ledger.remove_webhook(webhook_id)
    state.out.print(f"removed webhook {webhook_id}")


@command("disable", webhooks_app)
def webhooks_disable_command(ctx: typer.Context, webhook_id: WebhookArg) -> None:
    """Stop sending to a webhook; its deliveries wait until it is enabled again."""
    state = state_of(ctx)
    state.ledger.disable_webhook(webhook_id)
    state.out.print(f"disabled webhook {webhook_id}")


@command("enable", webhooks_app)
def webhooks_enable_command(ctx: typer.Context, webhook_id: WebhookArg) -> None:
    """Send to a disabled webhook again."""
    state = state_of(ctx)
    state.ledger.enable_webhook(webhook_id)
    state.out.print(f"enabled webhook {webhook_id}")


@command("deliveries", webhooks_app)
def webhooks_deliveries_command(
    ctx: typer.Context,
    webhook_id: Annotated[str | None, typer.Argument(
        metavar="[ID]", help="A webhook id (default: every webhook's) or, to see its "
                             "attempts, a delivery id (msg_…).")] = None,
    status: Annotated[str | None, typer.Option(
        help="Only deliveries with this status: pending, delivering, delivered, "
             "failed.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: AsJson = False,
) -> None:
    """List deliveries (newest first), or the attempts of one delivery."""
    state = state_of(ctx)
    ledger = state.ledger
    if webhook_id is not None and webhook_id.startswith("msg_"):
        delivery = ledger.webhook_delivery(webhook_id)
        attempts = ledger.webhook_attempts(delivery.id)
        if as_json:
            state.print_json({**delivery.to_dict(),
                              "attempt_history": [a.to_dict() for a in attempts]})
            return
        state.hint(f"delivery {delivery.id} ({delivery.event} of run {delivery.run_id}): "
                   f"{delivery.status}")
        table = Table("attempt", "at", "status", "latency", "error", "response", box=None)
        for a in attempts:
            table.add_row(str(a.number), render.when(a.at),
                          "—" if a.status_code is None else str(a.status_code),
                          "—" if a.latency_ms is None else f"{a.latency_ms} ms",
                          a.error or "", (a.response or "")[:60])
        state.show(table, empty=not attempts, nothing="no attempt yet")
        return
    found = ledger.webhook_deliveries(webhook_id, status=status, limit=limit)
    if as_json:
        state.print_json([d.to_dict() for d in found])
        return
    table = Table(box=None)
    for column in ("delivery", "webhook", "event", "run", "status", "attempts", "created"):
        table.add_column(column, no_wrap=True)  # ids are for copying: never cut
    table.add_column("last error")
    for d in found:
        table.add_row(d.id, d.webhook_id, d.event, d.run_id, d.status, str(d.attempts),
                      render.when(d.created_at), d.last_error or "")
    state.show(table, empty=not found, nothing="no deliveries")


@command("redeliver", webhooks_app)
def webhooks_redeliver_command(
    ctx: typer.Context,
    delivery_id: Annotated[str, typer.Argument(
        metavar="DELIVERY", help="A delivery id (msg_…, from webhooks deliveries).")],
) -> None:
    """Send a failed (or delivered) delivery again, with the same webhook-id."""
    state = state_of(ctx)
    delivery = state.ledger.redeliver(delivery_id)
    state.out.print(f"delivery {delivery.id} is {delivery.status}: a worker or server "
                    "sends it")
