"""Commands for operators: export, purge, and schema migrations."""

from __future__ import annotations

import contextlib
import csv
import enum
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..models import Run
from ..validation import duration as parse_duration
from ..validation import when as parse_when
from . import render
from .app import app, command
from .commands import AsJson, state_of
from .state import State, choice

if TYPE_CHECKING:
    from ..admin import SchemaStatus

CSV_COLUMNS = ["run_id", "workflow", "version", "owner", "run_status", "created_at",
               "run_duration", "position", "step", "step_status", "attempts", "step_duration",
               "error"]


class Format(enum.StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


@contextlib.contextmanager
def _progress(state: State, label: str, total: int | None = None) -> Iterator[Any]:
    """A progress bar on stderr, only on a terminal and without --quiet."""
    if state.quiet or not state.err.is_terminal:
        yield lambda advance: None
        return
    with Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed} runs"),
                  TimeElapsedColumn(), console=state.err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda advance: bar.advance(task, advance)


def _csv_rows(run: Run) -> Iterator[list[Any]]:
    head = [run.id, run.workflow, run.version, run.owner, run.status.value,
            run.created_at.isoformat(),
            run.duration.total_seconds() if run.duration else ""]
    if not run.steps:
        yield [*head, *[""] * 6]
    for step in run.steps:
        yield [*head, step.position, step.name, step.status.value, step.attempts,
               step.duration.total_seconds() if step.duration else "",
               f"{step.error.type}: {step.error.message}" if step.error else ""]


def write_export(runs: Iterator[Run], sink: IO[str], fmt: Format,
                 advance: Any = None) -> int:
    """Stream runs to ``sink``; one run (with its steps) in memory at a time."""
    count = 0
    writer = csv.writer(sink) if fmt is Format.csv else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    elif fmt is Format.json:
        sink.write("[")
    for run in runs:
        if writer is not None:
            writer.writerows(_csv_rows(run))
        else:
            text = json.dumps(run.to_dict(), default=str, ensure_ascii=False, allow_nan=False)
            if fmt is Format.json:
                sink.write(("\n" if count == 0 else ",\n") + text)
            else:
                sink.write(text + "\n")
        count += 1
        if advance is not None:
            advance(1)
    if fmt is Format.json:
        sink.write("\n]\n")
    return count


@command("export")
def export_command(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(
        help="Export only this run (id or prefix); otherwise every run the filters match.")]
    = None,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", metavar="FORMAT",
        help="Output format: jsonl (a run per line), json or csv.")] = Format.jsonl.value,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write to this file instead of standard output.")] = None,
    status: Annotated[list[str] | None, typer.Option(
        metavar="STATUS", help="Only runs in this status; repeatable.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only runs of this owner.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only runs with this tag.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Created at or after: a duration ago (2h) or a date.")] = None,
    until: Annotated[str | None, typer.Option(
        help="Created before: a duration ago or a date.")] = None,
) -> None:
    """Export runs with their steps as JSON, JSON Lines or CSV, streaming."""
    form = choice(Format, fmt, "--format")
    state = state_of(ctx)
    ledger = state.ledger
    runs = ledger.export(ledger.resolve_id(run_id) if run_id else None, status=status,
                         workflow=workflow, owner=owner, tag=tag, since=parse_when(since),
                         until=parse_when(until))
    with contextlib.ExitStack() as stack:
        sink: IO[str] = sys.stdout
        if output is not None:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(open(output, "w", encoding="utf-8", newline=""))
        advance = stack.enter_context(_progress(state, "exporting"))
        count = write_export(runs, sink, form, advance)
    if output is not None:
        state.hint(f"exported {count} runs to {output}")


@command("purge")
def purge_command(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Purge finished runs created longer ago than this (e.g. 90d).")],
    status: Annotated[list[str] | None, typer.Option(
        metavar="STATUS", help="Only finished runs in this status (completed, failed, cancelled); "
             "repeatable.")] = None,
    archive: Annotated[str | None, typer.Option(
        help="First write every purged run with its steps to this .jsonl.gz file.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would be purged; delete nothing.")] = False,
    as_json: AsJson = False,
) -> None:
    """Delete old finished runs with their steps, in bounded batches (retention)."""
    state = state_of(ctx)
    with _progress(state, "purging") as advance:
        report = state.ledger.purge(parse_duration(older_than), status=status,
                                    archive=archive, dry_run=dry_run, progress=advance)
    if as_json:
        state.print_json(report.to_dict())
        return
    verb = "would purge" if dry_run else "purged"
    state.out.print(f"{verb} {render.plural(report.runs, 'run')} and "
                    f"{render.plural(report.steps, 'step')} (child runs go with their parent)"
                    + (f"; archived to {report.archive}" if report.archive else ""))
    if report.kept:
        state.hint(f"kept {render.plural(report.kept, 'run tree')} with a run not finished "
                   "yet, or that a fork was made from")


db_app = typer.Typer(help="Schema migrations, for operators.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _status_line(status: SchemaStatus) -> str:
    state = "up to date" if status.up_to_date else "needs upgrade"
    return f"{status.url}: revision {status.current or 'none'} (head {status.head}) — {state}"


@command("upgrade", db_app)
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending migrations (opening a Ledger does this too)."""
    from .. import admin  # noqa: PLC0415 (start-up time: it loads SQLAlchemy)

    state: State = ctx.find_root().obj
    state.out.print(_status_line(admin.upgrade(state.db or _default_url())))


def _show_status(state: State, status: SchemaStatus, as_json: bool) -> None:
    if as_json:
        state.print_json({"url": status.url, "current": status.current, "head": status.head,
                          "up_to_date": status.up_to_date})
    else:
        state.out.print(_status_line(status))


@command("current", db_app)
def db_current(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    from .. import admin  # noqa: PLC0415 (start-up time: it loads SQLAlchemy)

    state: State = ctx.find_root().obj
    _show_status(state, admin.schema_status(state.db or _default_url()), as_json)


@command("check", db_app)
def db_check(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Exit 1 unless the schema is at the newest revision (changes nothing)."""
    from .. import admin  # noqa: PLC0415 (start-up time: it loads SQLAlchemy)

    state: State = ctx.find_root().obj
    status = admin.schema_status(state.db or _default_url())
    _show_status(state, status, as_json)
    if not status.up_to_date:
        raise typer.Exit(1)


def _default_url() -> str:
    from ..ledger import default_url  # noqa: PLC0415 (start-up time)

    return default_url()
