"""flowledger retention set | ls | rm | apply, and flowledger archive restore: retention
policies and their archives (docs/retention.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..validation import duration as parse_duration
from . import render
from .app import app, command
from .commands import AsJson, state_of

retention_app = typer.Typer(help="Retention policies: finished runs deleted (and archived "
                                 "first) some time after they completed.",
                            no_args_is_help=True)
app.add_typer(retention_app, name="retention")
archive_app = typer.Typer(help="Archives that retention policies wrote.", no_args_is_help=True)
app.add_typer(archive_app, name="archive")


@command("set", retention_app)
def retention_set_command(
    ctx: typer.Context,
    keep: Annotated[str, typer.Option(
        help="How long after a run completed it is kept (e.g. 90d, 12h).")],
    workflow: Annotated[str | None, typer.Option(
        help="Only runs of this workflow (default: every workflow).")] = None,
    owner: Annotated[str | None, typer.Option(
        help="Only runs of this owner (default: every owner).")] = None,
    status: Annotated[list[str] | None, typer.Option(
        metavar="STATUS", help="Only runs that ended in this status (completed, failed, "
                               "cancelled); repeatable (default: all three).")] = None,
    archive: Annotated[str | None, typer.Option(
        help="Archive each batch here first: an fsspec URL with {owner}, {date}, "
             "{workflow} filled in (e.g. 's3://bucket/fl/{owner}/{date}.jsonl.gz'). "
             "Without it runs are deleted without an archive.")] = None,
    as_json: AsJson = False,
) -> None:
    """Create a retention policy, or replace the one with the same workflow, owner and
    statuses."""
    state = state_of(ctx, creates=True)
    policy = state.ledger.set_retention(workflow, owner, status, keep=parse_duration(keep),
                                        archive=archive)
    if as_json:
        state.print_json(policy.to_dict())
        return
    state.out.print(f"{policy.id}: keep {render.duration(policy.keep)} after completion"
                    + (f", archive to {policy.archive}" if policy.archive else
                       ", no archive"))


@command("ls", retention_app)
def retention_ls_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the retention policies."""
    state = state_of(ctx)
    found = state.ledger.retention_policies()
    if as_json:
        state.print_json([p.to_dict() for p in found])
        return
    table = Table("id", "workflow", "owner", "statuses", "keep", "archive", "updated",
                  box=None)
    for p in found:
        table.add_row(p.id, p.workflow or "*", p.owner or "*", ",".join(p.statuses),
                      render.duration(p.keep), p.archive or "-", render.when(p.updated_at))
    state.show(table, empty=not found,
               nothing="no retention policies (set one with: flowledger retention set "
                       "--keep 90d)")


@command("rm", retention_app)
def retention_rm_command(
    ctx: typer.Context,
    policy_id: Annotated[str, typer.Argument(metavar="ID",
                                             help="The policy's id (retention ls).")],
) -> None:
    """Remove a retention policy."""
    state = state_of(ctx)
    state.ledger.remove_retention(policy_id)
    state.out.print(f"removed retention policy {policy_id}")


@command("apply", retention_app)
def retention_apply_command(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would be deleted; delete and archive nothing.")] = False,
    batch: Annotated[int, typer.Option(
        help="Run trees archived and deleted together.")] = 200,
    as_json: AsJson = False,
) -> None:
    """Apply the retention policies now (what workers do periodically)."""
    state = state_of(ctx)
    report = state.ledger.apply_retention(dry_run=dry_run, batch=batch)
    if as_json:
        state.print_json(report.to_dict())
        return
    if report.busy is not None:
        state.out.print(f"another process ({report.busy}) is applying the retention "
                        "policies now: nothing done here")
        return
    verb = "would delete" if dry_run else "deleted"
    state.out.print(f"{verb} {render.plural(report.runs, 'run')} "
                    f"({render.plural(report.trees, 'run tree')})")
    for url in report.archives:
        state.out.print(f"archived to {url}")
    if report.kept:
        state.hint(f"kept {render.plural(report.kept, 'run tree')} with a run not finished "
                   "yet, or that a fork was made from")


@command("restore", archive_app)
def archive_restore_command(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(
        metavar="FILE", help="An archive: a path or fsspec URL; a glob restores several.")],
    as_json: AsJson = False,
) -> None:
    """Bring archived run trees back (runs recorded already are skipped)."""
    state = state_of(ctx, creates=True)
    report = state.ledger.restore_archive(url)
    if as_json:
        state.print_json(report.to_dict())
        return
    state.out.print(f"restored {render.plural(report.restored, 'run')} from "
                    f"{render.plural(len(report.archives), 'archive')}"
                    + (f"; skipped {report.skipped} (recorded already)"
                       if report.skipped else ""))
