"""Commands that start, act on and look at runs."""

from __future__ import annotations

import contextlib
import enum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from ..errors import ConfigurationError, FlowledgerError, RunCancelled, RunFailed
from ..models import Run, RunStatus
from ..serialization import parameter_hints
from ..validation import when as parse_when
from ..workflow import WorkflowDef, load_entrypoint
from . import render
from .app import command, one_line
from .state import State, choice, parse_inputs

if TYPE_CHECKING:
    from ..bulk import BulkResult
    from ..handle import RunHandle
    from ..specs import Spec

RunId = Annotated[str, typer.Argument(help="Run id, or an unambiguous prefix of it.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Inputs = Annotated[list[str] | None, typer.Option(
    "--input", "-i", metavar="KEY=VALUE",
    help="A workflow input as key=value (value parsed as JSON if it can be); repeatable.")]
InputJson = Annotated[str | None, typer.Option(
    "--input-json", help="A JSON object of inputs from FILE, or - for standard input.")]
Executor = Annotated[str | None, typer.Option(
    metavar="PROCESS", help="Only runs this process executes or last executed: host:pid:start "
                            "as `flowledger workers` shows it, or a prefix ending with : "
                            "(host: for every process of a host).")]
MaybeRunId = Annotated[str | None, typer.Argument(
    help="Run id, or an unambiguous prefix of it; leave out to act on the runs the "
         "filters match.")]


BulkStatus = Annotated[list[str] | None, typer.Option(
    metavar="STATUS", help="Bulk: only runs in this status; repeatable.")]
BulkWorkflow = Annotated[str | None, typer.Option(help="Bulk: only runs of this workflow.")]
BulkOwner = Annotated[str | None, typer.Option(help="Bulk: only runs of this owner.")]
BulkTag = Annotated[str | None, typer.Option(help="Bulk: only runs with this tag.")]
BulkSince = Annotated[str | None, typer.Option(
    help="Bulk: only runs created at or after: a duration ago (2h) or a date.")]
BulkUntil = Annotated[str | None, typer.Option(
    help="Bulk: only runs created before: a duration ago or a date.")]
BulkQueue = Annotated[str | None, typer.Option(
    help="Bulk: only runs submitted to this queue.")]
BulkAll = Annotated[bool, typer.Option(
    "--all", help="Bulk with no filter: act on every run (refused without it).")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Bulk: list the runs it would act on, and change nothing.")]


def state_of(ctx: typer.Context, *, creates: bool = False) -> State:
    """The invocation's state. Only commands that record something (``creates``) may
    create a missing SQLite database; the others say it is missing."""
    state: State = ctx.obj
    state.creates = creates
    ctx.call_on_close(state.close)
    return state


SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def spec_file(target: str) -> Spec:
    """A spec file named on the command line, validated."""
    from ..specs import load_spec  # noqa: PLC0415 (start-up time: YAML, Jinja2, pydantic)

    return load_spec(target)


def load_target(target: str, inputs: list[str] | None,
                input_json: str | None) -> tuple[WorkflowDef, dict[str, Any]]:
    """The workflow named on the command line (Python code, or a spec file), and its
    inputs (checked by the Ledger)."""
    definition = (spec_file(target).definition if target.lower().endswith(SPEC_SUFFIXES)
                  else load_entrypoint(target))
    text = frozenset(name for name, hint in parameter_hints(definition.fn).items()
                     if hint is str)
    return definition, parse_inputs(inputs or [], input_json, text)


def _finish(state: State, handle: RunHandle, as_json: bool) -> None:
    """Wait for a run (showing its steps live on a terminal) and print its outcome."""
    live = state.out.is_terminal and not state.quiet and not as_json
    if live:
        with Live(render.steps_table(handle.get()), console=state.err, transient=True,
                  refresh_per_second=8) as display:
            while not handle.wait(0.2):
                display.update(render.steps_table(handle.get()))
    try:
        output = handle.result()
    except (RunFailed, RunCancelled):
        if as_json:
            state.print_json(state.ledger.get(handle.id).to_dict())
        elif not state.quiet:
            state.err.print(render.steps_table(state.ledger.get(handle.id)))
        raise
    if as_json:
        state.print_json(state.ledger.get(handle.id).to_dict())
        return
    if live:
        state.err.print(render.steps_table(state.ledger.get(handle.id)))
    state.print_json(output)


@command("run")
def run_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        help="The workflow: package.module:workflow, path/to/file.py:workflow, or a spec "
             "file (.yaml, .yml, .json).")],
    inputs: Inputs = None,
    input_json: InputJson = None,
    owner: Annotated[str | None, typer.Option(help="Owner of the new run.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="TAG", help="A tag for the new run; repeatable.")] = None,
    as_json: AsJson = False,
) -> None:
    """Start a run of a workflow, show its steps as they run, print its output."""
    state = state_of(ctx, creates=True)
    definition, values = load_target(target, inputs, input_json)
    handle = state.ledger.start(definition, owner=owner, tags=tag or (), inputs=values)
    state.hint(f"run {handle.id}")
    _finish(state, handle, as_json)


@command("runs")
def runs_command(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(
        metavar="STATUS", help="Only runs in this status (pending, running, paused, "
                               "waiting, completed, failed, cancelled); repeatable.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only runs of this owner.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only runs with this tag.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Created at or after: a duration ago (2h, 7d) or a date (2026-11-01).")] = None,
    until: Annotated[str | None, typer.Option(
        help="Created before: a duration ago or a date.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only runs submitted to this queue.")]
    = None,
    executor: Executor = None,
    parent: Annotated[str | None, typer.Option(
        metavar="RUN_ID", help="Only the child runs of this run.")] = None,
    forked_from: Annotated[str | None, typer.Option(
        metavar="RUN_ID", help="Only the forks of this run.")] = None,
    top_level: Annotated[bool, typer.Option(
        "--top-level", help="Only runs that are no other run's child.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many runs (1-1000).")] = 20,
    cursor: Annotated[str | None, typer.Option(
        help="Continue after a previous page (its next cursor).")] = None,
    as_json: AsJson = False,
) -> None:
    """List runs, newest first."""
    state = state_of(ctx)
    resolve = state.ledger.resolve_id
    page = state.ledger.summaries(status=status, workflow=workflow, owner=owner, tag=tag,
                                  queue=queue, since=parse_when(since),
                                  until=parse_when(until), limit=limit, cursor=cursor,
                                  executor=executor,
                                  parent=None if parent is None else resolve(parent),
                                  forked_from=None if forked_from is None
                                  else resolve(forked_from), top_level=top_level)
    if as_json:
        state.print_json({"runs": page.runs, "next_cursor": page.next_cursor})
        return
    state.show(render.runs_table(page.runs), empty=not page.runs,
               nothing="no runs match" if cursor or top_level or any(
                   (status, workflow, owner, tag, queue, since, until, executor, parent,
                    forked_from)) else "no runs yet")
    stalled = [run for run in page.runs if run["stalled"]]
    if stalled:
        state.hint(f"{len(stalled)} run{'s' if len(stalled) > 1 else ''} marked running "
                   f"{'have' if len(stalled) > 1 else 'has'} no live executor: "
                   f"`flowledger inspect {stalled[0]['id'][:13]}` says why and what to do")
    if page.next_cursor:
        state.hint(f"more: --cursor {page.next_cursor}")


def _load_tree(state: State, run: Run) -> dict[str, Any]:
    record = run.to_dict()
    record["children"] = [_load_tree(state, state.ledger.get(s.child_run_id))
                          for s in run.steps if s.child_run_id]
    return record


@command("inspect")
def inspect_command(ctx: typer.Context, run_id: RunId, as_json: AsJson = False,
                    with_logs: Annotated[bool, typer.Option(
                        "--logs", help="Also what each step attempt logged (JSON: a "
                                       "\"logs\" list).")] = False) -> None:
    """Show a run's whole trace: header, steps, timeline and child runs."""
    state = state_of(ctx)
    run = state.ledger.get(run_id)
    logs = state.ledger.logs(run.id) if with_logs else []
    if as_json:
        tree = _load_tree(state, run)
        state.print_json({**tree, "logs": [a.to_dict() for a in logs]} if with_logs else tree)
        return
    state.out.print(render.inspect_view(run, state.ledger.get, run.artifacts))
    if with_logs:
        state.out.print(Text())
        state.out.print(Text("logs", style="bold"))
        state.out.print(render.logs_view(logs) if logs else Text("no logs recorded",
                                                                 style="dim"))


@command("resume")
def resume_command(ctx: typer.Context, run_id: MaybeRunId = None, as_json: AsJson = False,
                   force: Annotated[bool, typer.Option(
                       help="Resume even if the run is marked running by a process on "
                            "another host.")] = False,
                   status: BulkStatus = None, workflow: BulkWorkflow = None,
                   owner: BulkOwner = None, tag: BulkTag = None, since: BulkSince = None,
                   until: BulkUntil = None, queue: BulkQueue = None,
                   executor: Executor = None,
                   to_queue: Annotated[str | None, typer.Option(
                       help="Bulk: put the runs in this queue (default: each run's "
                            "own queue).")] = None,
                   all_runs: BulkAll = False, dry_run: DryRun = False) -> None:
    """Continue a failed, cancelled, paused or crashed run from its first unfinished
    step (a paused queued run goes back to its queue for a worker). With filters instead
    of a run id, put every matching failed, cancelled or paused top-level run back in a
    queue for workers (`--dry-run` first lists them)."""
    state = state_of(ctx)
    bulk = (status, workflow, owner, tag, since, until, queue, executor, to_queue)
    if run_id is None:
        result = state.ledger.resume_runs(
            status=status, workflow=workflow, owner=owner, tag=tag, since=parse_when(since),
            until=parse_when(until), queue=queue, executor=executor, to_queue=to_queue,
            all_runs=all_runs, dry_run=dry_run)
        _bulk_report(state, result, as_json)
        return
    _single(bulk, all_runs, dry_run)
    full = state.ledger.resolve_id(run_id)
    before = state.ledger.get(full, steps=False)
    done = before.status is RunStatus.COMPLETED
    handle = state.ledger.resume(full, force=force)
    if before.status is RunStatus.PAUSED and before.queue is not None:
        if as_json:
            state.print_json({"run_id": full, "status": "pending", "queue": before.queue})
        else:
            state.out.print(f"{full} is back in queue {before.queue}")
        return
    state.hint(f"run {handle.id} had already completed; its recorded output:" if done
               else f"resuming run {handle.id}")
    _finish(state, handle, as_json)


def _single(bulk: tuple[Any, ...], all_runs: bool, dry_run: bool) -> None:
    """A command given a run id takes no bulk option."""
    if all_runs or dry_run or any(value is not None for value in bulk):
        raise ConfigurationError("give either a run id or filters (--status, --workflow, "
                                 "...), not both")


def _bulk_report(state: State, result: BulkResult, as_json: bool) -> None:
    if as_json:
        state.print_json(result.to_dict())
        return
    verb = {"cancel": ("cancelled", "would cancel"),
            "resume": ("resumed", "would resume")}[result.action][result.dry_run]
    if result.dry_run:
        for run_id in result.run_ids:
            state.out.print(run_id)
    plural = "" if result.count == 1 else "s"
    state.out.print(f"{verb} {result.count} run{plural}")
    if result.skipped:
        state.hint(f"{len(result.skipped)} matching run(s) left alone (finished or changed "
                   "meanwhile, or no queue to resume in); --json lists them")


@command("recover")
def recover_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Resume every run left running by a dead process on this host, and wait for them."""
    state = state_of(ctx)
    refused: list[str] = []

    def report(run_id: str, exc: FlowledgerError) -> None:
        refused.append(run_id)
        state.err.print(f"error: cannot recover run {run_id}: {one_line(exc)}",
                        style="red", markup=False)

    handles = state.ledger.recover(on_error=report)
    outcomes = []
    for handle in handles:
        with contextlib.suppress(RunFailed, RunCancelled):
            handle.result()
        outcomes.append(state.ledger.get(handle.id, steps=False))
    if as_json:
        state.print_json({"recovered": [r.to_dict() for r in outcomes],
                          "not_recovered": refused})
    elif outcomes:
        state.out.print(render.runs_table([render.as_summary(r) for r in outcomes]))
    elif not refused:
        state.hint("nothing to recover")
    if refused or any(r.status is not RunStatus.COMPLETED for r in outcomes):
        raise typer.Exit(1)


@command("cancel")
def cancel_command(ctx: typer.Context, run_id: MaybeRunId = None, as_json: AsJson = False,
                   status: BulkStatus = None, workflow: BulkWorkflow = None,
                   owner: BulkOwner = None, tag: BulkTag = None, since: BulkSince = None,
                   until: BulkUntil = None, queue: BulkQueue = None,
                   executor: Executor = None,
                   parent: Annotated[str | None, typer.Option(
                       metavar="RUN_ID", help="Bulk: only the child runs of this run.")]
                   = None,
                   all_runs: BulkAll = False, dry_run: DryRun = False) -> None:
    """Cancel a pending or running run (and its child runs); it stops before its next step.
    With filters instead of a run id, cancel every unfinished run they match, in batches,
    and print how many (`--dry-run` lists them and changes nothing)."""
    state = state_of(ctx)
    bulk = (status, workflow, owner, tag, since, until, queue, executor, parent)
    if run_id is None:
        result = state.ledger.cancel_runs(
            status=status, workflow=workflow, owner=owner, tag=tag, since=parse_when(since),
            until=parse_when(until), queue=queue, executor=executor,
            parent=None if parent is None else state.ledger.resolve_id(parent),
            all_runs=all_runs, dry_run=dry_run)
        _bulk_report(state, result, as_json)
        return
    _single(bulk, all_runs, dry_run)
    full = state.ledger.resolve_id(run_id)
    cancelled = state.ledger.cancel(full)
    status_now = state.ledger.get(full, steps=False).status.value
    if as_json:
        state.print_json({"run_id": full, "cancelled": cancelled, "status": status_now})
    elif cancelled:
        state.out.print(f"cancelled {full}")
    else:
        state.out.print(f"{full} had already finished ({status_now})")


@command("pause")
def pause_command(ctx: typer.Context, run_id: RunId,
                  reason: Annotated[str | None, typer.Option(
                      help="Why (recorded with the pause, shown by inspect).")] = None,
                  as_json: AsJson = False) -> None:
    """Pause a pending or running run: it stops before its next step and holds no worker
    until `flowledger resume`."""
    state = state_of(ctx)
    full = state.ledger.resolve_id(run_id)
    paused = state.ledger.pause(full, reason=reason)
    status = state.ledger.get(full, steps=False).status.value
    if as_json:
        state.print_json({"run_id": full, "paused": paused, "status": status})
    elif paused:
        state.out.print(f"paused {full} (a step in flight finishes first)")
    else:
        state.out.print(f"{full} was not paused: it is {status}")


@command("fork")
def fork_command(
    ctx: typer.Context,
    run_id: RunId,
    from_step: Annotated[int, typer.Option(
        "--from-step", help="Re-execute from this position; earlier steps are reused.")],
    inputs: Inputs = None,
    input_json: InputJson = None,
    spec: Annotated[str | None, typer.Option(
        "--spec", metavar="FILE",
        help="Run the fork with this spec file (an edited version of the run's spec) "
             "instead of the text the run recorded.")] = None,
    as_json: AsJson = False,
) -> None:
    """Start a new run that reuses a run's steps before a position and runs on from there."""
    state = state_of(ctx)
    full = state.ledger.resolve_id(run_id)
    overrides = parse_inputs(inputs or [], input_json)
    handle = state.ledger.fork(full, from_step, inputs=overrides or None,
                               workflow=None if spec is None else spec_file(spec))
    state.hint(f"run {handle.id} (fork of {run_id} from position {from_step})")
    _finish(state, handle, as_json)


@command("diff")
def diff_command(ctx: typer.Context,
                 run_a: Annotated[str, typer.Argument(help="The first run (id or prefix).")],
                 run_b: Annotated[str, typer.Argument(help="The second run (id or prefix).")],
                 as_json: AsJson = False) -> None:
    """Compare two runs step by step: status, duration and output changes."""
    state = state_of(ctx)
    diff = state.ledger.diff(state.ledger.resolve_id(run_a), state.ledger.resolve_id(run_b))
    if as_json:
        state.print_json(diff.to_dict())
        return
    state.out.print(render.diff_view(diff))


@command("stats")
def stats_command(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Runs created at or after: a duration ago (24h) or a date.")] = None,
    as_json: AsJson = False,
) -> None:
    """Per workflow: runs, success rate, p50/p95 duration; per step: failures, p50/p95."""
    state = state_of(ctx)
    stats = state.ledger.stats(workflow=workflow, since=parse_when(since))
    if as_json:
        state.print_json(stats.to_dict())
        return
    state.show(render.stats_view(stats), empty=not stats.workflows,
               nothing="no runs in that window")


class GroupBy(enum.StrEnum):
    workflow = "workflow"
    model = "model"
    owner = "owner"


@command("usage")
def usage_command(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(
        "--by", metavar="GROUP", help="Group totals by workflow, model or owner.")]
    = GroupBy.workflow.value,
    since: Annotated[str | None, typer.Option(
        help="Calls recorded at or after: a duration ago (24h) or a date.")] = None,
    until: Annotated[str | None, typer.Option(
        help="Calls recorded before: a duration ago or a date.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner.")] = None,
    as_json: AsJson = False,
) -> None:
    """LLM calls, tokens and cost in USD, totalled per workflow, model or owner."""
    group = choice(GroupBy, by, "--by").value
    state = state_of(ctx)
    groups = state.ledger.usage(since=parse_when(since), until=parse_when(until),
                                group_by=group, workflow=workflow, owner=owner)
    if as_json:
        state.print_json([g.to_dict() for g in groups])
        return
    state.show(render.usage_view(groups, group), empty=not groups,
               nothing="no LLM calls recorded in that window")
