"""Rich renderings of runs, steps, timelines, diffs and statistics for the terminal."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..models import (
    AttemptOutcome,
    Run,
    RunStatus,
    Step,
    StepStatus,
    UsageGroup,
    UsageTotals,
)
from ..reports import RunDiff, Stats

if TYPE_CHECKING:
    from ..artifacts import ArtifactInfo
    from ..steplogs import AttemptLogs

STATUS_STYLE = {
    "pending": "yellow", "running": "cyan", "completed": "green", "failed": "bold red",
    "cancelled": "magenta", "skipped": "dim", "interrupted": "magenta",
    "unrecorded": "dim", "paused": "yellow", "waiting": "cyan",
}
TIMELINE_WIDTH = 40


def plural(count: int, noun: str) -> str:
    """``1 call``, ``2 calls``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def status_text(status: RunStatus | StepStatus | str | None) -> Text:
    value = getattr(status, "value", status) or "—"
    return Text(str(value), style=STATUS_STYLE.get(str(value), ""))


def duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if abs(seconds) < 1:
        return f"{seconds * 1000:.1f} ms"
    if abs(seconds) < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def short_id(run_id: str) -> str:
    return run_id[:13]


def compact(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def error_summary(step: Step | Run, width: int = 50) -> str:
    if step.error is None or getattr(step, "status", None) == StepStatus.SKIPPED:
        return ""
    kind = step.error.type.rsplit(".", 1)[-1]
    return compact(f"{kind}: {step.error.message}", width).strip('"')


def runs_table(summaries: Sequence[dict[str, Any]]) -> Table:
    """Run summaries (``Ledger.summaries``) as a table."""
    table = Table(show_edge=False, header_style="bold")
    for column in ("id", "workflow", "status", "created", "duration", "steps", "cost",
                   "owner", "parent", "tags"):
        table.add_column(column, no_wrap=column not in ("workflow", "tags"),
                         overflow="fold" if column in ("workflow", "tags") else "ellipsis",
                         justify="right" if column in ("duration", "steps", "cost")
                         else "left")
    for run in summaries:
        seconds, counts, cost = run["duration"], run["counts"], run["own_usage"]["cost_usd"]
        table.add_row(short_id(run["id"]), f"{run['workflow']} v{run['version']}",
                      status_text(RunStatus(run["status"])) + (
                          Text(" (stalled)", style="yellow") if run["stalled"] else ""),
                      when(datetime.fromisoformat(run["created_at"])),
                      duration(None if seconds is None else timedelta(seconds=seconds)),
                      f"{counts['completed']}/{counts['total']}",
                      "—" if cost is None else f"${cost:.4f}", run["owner"],
                      short_id(parent) if (parent := run["lineage"]["parent_id"]) else "—",
                      ", ".join(run["tags"]))
    return table


def as_summary(run: Run) -> dict[str, Any]:
    """What ``runs_table`` shows of a run record."""
    return {"id": run.id, "workflow": run.workflow, "version": run.version,
            "status": run.status.value, "stalled": run.stalled,
            "created_at": run.created_at.isoformat(),
            "duration": run.duration.total_seconds() if run.duration else None,
            "counts": {"completed": run.counts.completed, "total": run.counts.total},
            "own_usage": {"cost_usd": run.usage.cost_usd if run.usage else None},
            "owner": run.owner, "tags": list(run.tags),
            "lineage": {"parent_id": run.parent_id}}


def run_header(run: Run) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", run.id)
    code = (f"spec {run.entrypoint[5:17]}" if run.entrypoint.startswith("spec:")
            else run.entrypoint)
    grid.add_row("workflow", f"{run.workflow} v{run.version}  [dim]{code}[/dim]")
    grid.add_row("status", status_text(run.status) + (
        Text(f"  (stalled: {run.stalled})", style="yellow") if run.stalled else ""))
    if run.paused_at is not None:
        grid.add_row("paused", f"since {when(run.paused_at)} by {run.paused_by or '?'}"
                               + (f": {run.pause_reason}" if run.pause_reason else "")
                               + "   (flowledger resume continues it)")
    if run.status is RunStatus.WAITING:
        what = (f"event {run.waiting_for!r}" + (f" until {when(run.wake_at)}" if run.wake_at
                                                else "") +
                f"   (flowledger send-event {run.id} {run.waiting_for} --data JSON)"
                if run.waiting_for is not None else f"its timer, until {when(run.wake_at)}")
        grid.add_row("waiting", f"for {what}")
    grid.add_row("owner", run.owner + (f"   tags: {', '.join(run.tags)}" if run.tags else ""))
    grid.add_row("times", f"created {when(run.created_at)}   started {when(run.started_at)}   "
                          f"completed {when(run.completed_at)}")
    grid.add_row("duration", duration(run.duration))
    counts = run.counts
    grid.add_row("steps", f"{counts.total} total: {counts.completed} completed, "
                          f"{counts.failed} failed, {counts.skipped} skipped"
                          + (f", {counts.running} running" if counts.running else ""))
    lineage = []
    if run.recovery_attempts:
        times = "once" if run.recovery_attempts == 1 else f"{run.recovery_attempts} times"
        lineage.append(f"resumed {times} (last at {when(run.resumed_at)}, "
                       f"from position {run.resumed_from_position})")
    if run.forked_from:
        lineage.append(f"forked from {run.forked_from} at position {run.forked_from_position}")
    if run.parent_id:
        lineage.append(f"child of {run.parent_id}")
    if lineage:
        grid.add_row("lineage", "\n".join(lineage))
    if run.usage is not None and run.usage.calls:
        children = any(s.child_run_id for s in run.steps)
        grid.add_row("LLM usage", usage_line(run.usage) + ("  (with child runs)" if children
                                                           else ""))
    if run.deadline_at:
        grid.add_row("deadline", when(run.deadline_at))
    if run.error:
        grid.add_row("error", Text(f"{run.error.type}: {run.error.message}", style="red"))
    if run.output is not None:
        grid.add_row("output", Text(compact(run.output, 200)))  # never markup
    return grid


def steps_table(run: Run) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("pos", "step", "status", "att", "duration", "tokens", "cost", "error"):
        table.add_column(column, justify="right" if column in ("pos", "att") else "left")
    for step in run.steps:
        name = step.name + (f" → {short_id(step.child_run_id)}" if step.child_run_id else "")
        totals = step.usage_totals
        status = status_text(step.status)
        if step.redacted:  # its output was redacted: a resume runs it again
            status.append(" (redacted)", style="dim")
        table.add_row(str(step.position), name, status, str(step.attempts),
                      duration(step.duration), tokens(totals.total_tokens if totals.calls
                                                      else None),
                      cost(totals.cost_usd, totals.unpriced_calls), Text(error_summary(step)))
    return table


def tokens(value: int | None) -> str:
    return "—" if not value else f"{value:,}"


def cost(value: float | None, unpriced: int = 0) -> str:
    text = "—" if value is None else f"${value:.4f}" if value < 1 else f"${value:,.2f}"
    return text + (f" (+{unpriced} unpriced)" if unpriced and value is not None else "")


def usage_line(totals: UsageTotals) -> str:
    return (f"{plural(totals.calls, 'call')}, {totals.input_tokens:,} in "
            f"({totals.cached_input_tokens:,} cached) + {totals.output_tokens:,} out tokens, "
            f"{cost(totals.cost_usd, totals.unpriced_calls)}; models: {', '.join(totals.models)}")


def timeline(run: Run, width: int = TIMELINE_WIDTH) -> Table:
    """Each step as a bar placed and sized to scale within the run's time span."""
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right")
    table.add_column()
    table.add_column()
    starts = [s.started_at for s in run.steps if s.started_at]
    if not starts:
        return table
    begin = min(starts)
    ends = [s.completed_at for s in run.steps if s.completed_at] + [max(starts)]
    span = max((max(ends) - begin).total_seconds(), 1e-6)
    for step in run.steps:
        if step.started_at is None:
            continue
        offset = int((step.started_at - begin).total_seconds() / span * (width - 1))
        length = max(1, round(step.duration.total_seconds() / span * width)) if step.duration \
            else 1
        bar = " " * offset + ("█" * length if step.duration else "▶")
        table.add_row(str(step.position), Text(bar[:width].ljust(width),
                                               style=STATUS_STYLE.get(step.status.value, "")),
                      f"{step.name} {duration(step.duration)}")
    return table


def child_tree(run: Run, load: Callable[[str], Run], depth: int = 3) -> Tree | None:
    children = [s.child_run_id for s in run.steps if s.child_run_id]
    if not children:
        return None
    tree = Tree(f"[bold]{run.workflow}[/bold] {short_id(run.id)}")
    _grow(tree, children, load, depth)
    return tree


def _grow(tree: Tree, children: list[str], load: Callable[[str], Run], depth: int) -> None:
    for child_id in children:
        child = load(child_id)
        branch = tree.add(Text.assemble(f"{child.workflow} {short_id(child.id)} ",
                                        status_text(child.status),
                                        f" {duration(child.duration)}"))
        grandchildren = [s.child_run_id for s in child.steps if s.child_run_id]
        if grandchildren and depth > 1:
            _grow(branch, grandchildren, load, depth - 1)


def attempts_view(run: Run) -> RenderableType | None:
    """Every attempt of the steps that did not succeed at once, then each distinct
    traceback they raised (the same traceback is printed once)."""
    steps = [s for s in run.steps
             if len(s.attempt_history) > 1 or any(a.error and a.outcome != AttemptOutcome.SKIPPED
                                                  for a in s.attempt_history)]
    if not steps:
        return None
    table = Table(show_edge=False, header_style="bold")
    for column in ("pos", "step", "attempt", "outcome", "started", "duration", "error"):
        table.add_column(column, justify="right" if column in ("pos", "attempt") else "left")
    tracebacks: dict[str, list[str]] = {}
    for step in steps:
        for attempt in step.attempt_history:
            error = ""
            if attempt.error is not None and attempt.outcome != AttemptOutcome.SKIPPED:
                error = f"{attempt.error.type.rsplit('.', 1)[-1]}: {attempt.error.message}"
                if attempt.error.traceback:
                    tracebacks.setdefault(attempt.error.traceback.rstrip(), []).append(
                        f"{step.position}.{attempt.number}")
            if attempt.retry_at is not None:
                error += f" (retry due {when(attempt.retry_at)})"
            table.add_row(str(step.position), step.name, str(attempt.number),
                          status_text(attempt.outcome), when(attempt.started_at),
                          duration(attempt.duration), Text(error, style="red"))
    parts: list[RenderableType] = [Text("attempts", style="bold"), table]
    for text, where in tracebacks.items():
        label = ", ".join(where)
        parts += [Text(), Text(f"traceback of attempt{'s' if len(where) > 1 else ''} {label} "
                               "(position.attempt)", style="bold"), Text(text, style="red")]
    return Group(*parts)


def inspect_view(run: Run, load: Callable[[str], Run],
                 artifacts: Sequence[ArtifactInfo] = ()) -> RenderableType:
    parts: list[RenderableType] = [run_header(run), Text()]
    if run.steps:
        parts += [steps_table(run), Text(), Text("timeline", style="bold"), timeline(run)]
    tried = attempts_view(run)
    if tried is not None:
        parts += [Text(), tried]
    tree = child_tree(run, load)
    if tree is not None:
        parts += [Text(), Text("child runs", style="bold"), tree]
    if artifacts:
        parts += [Text(), Text("artifacts", style="bold"), artifacts_table(artifacts)]
    if run.context:
        grid = Table.grid(padding=(0, 2))
        for name, value in run.context.items():
            grid.add_row(name, Text(compact(value, 100)))
        parts += [Text(), Text("context", style="bold"), grid]
    return Group(*parts)


_LEVEL_STYLES = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


def logs_view(attempts: Sequence[AttemptLogs]) -> RenderableType:
    """Each attempt's records under a heading naming its step and attempt."""
    parts: list[RenderableType] = []
    for attempt in attempts:
        if parts:
            parts.append(Text())
        parts.append(Text(f"step {attempt.position} {attempt.step} · attempt "
                          f"{attempt.attempt}", style="bold"))
        for entry in attempt.records:
            line = Text(f"{entry.at:%H:%M:%S.%f}"[:-3] + " ", style="dim")
            line.append(f"{entry.level:<8}", style=_LEVEL_STYLES.get(entry.level, ""))
            line.append(f" {entry.logger}: ", style="cyan")
            line.append(entry.message)
            parts.append(line)
            if entry.exception:
                parts.append(Text(entry.exception.rstrip(), style="red"))
        if attempt.truncated:
            parts.append(Text(f"… truncated: {attempt.dropped} more records were not kept "
                              "(the bound is 1,000 records or 256 KiB per attempt)",
                              style="yellow"))
    return Group(*parts)


def diff_view(diff: RunDiff) -> RenderableType:
    table = Table(show_edge=False, header_style="bold")
    for column in ("pos", "step", "status", "duration", "Δ duration", "output"):
        table.add_column(column)
    details: list[RenderableType] = []
    for change in diff.steps:
        a, b = change.a, change.b
        names = {s.name for s in (a, b) if s}
        name = " → ".join(s.name if s else "—" for s in (a, b)) if len(names) > 1 \
            else names.pop()
        status = (status_text(a.status if a else None) + Text(" → ")
                  + status_text(b.status if b else None)) if change.status_changed \
            else status_text(a.status if a else None)
        delta = change.duration_change
        table.add_row(str(change.position), name, status,
                      f"{duration(a.duration if a else None)} → "
                      f"{duration(b.duration if b else None)}",
                      "—" if delta is None else ("+" if delta >= timedelta(0) else "-")
                      + duration(abs(delta)),
                      Text("changed", style="yellow") if change.output_changed else "same")
        if change.output_changed:
            details += [Text(f"\nposition {change.position} output:", style="bold"),
                        Text(change.output_diff)]
    header = Text(f"a: {diff.a.id} ({diff.a.status.value}, {duration(diff.a.duration)})\n"
                  f"b: {diff.b.id} ({diff.b.status.value}, {duration(diff.b.duration)})\n")
    return Group(header, table, *details)


def size(value: int) -> str:
    if value < 1024:
        return f"{value:,} B"
    scaled = float(value)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"


def artifacts_table(artifacts: Sequence[ArtifactInfo]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("key", "size", "media type", "step", "created", "sha256"):
        table.add_column(column, justify="right" if column in ("size", "step") else "left")
    for item in artifacts:
        table.add_row(item.key, size(item.size), item.media_type,
                      str(item.position) if item.position else "body", when(item.created_at),
                      item.digest[:12])
    return table


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def stats_view(stats: Stats) -> RenderableType:
    workflows = Table(title="workflows", show_edge=False, header_style="bold")
    for column in ("workflow", "runs", "completed", "failed", "cancelled", "active", "success",
                   "p50", "p95", "tokens", "cost"):
        workflows.add_column(column)
    for w in stats.workflows:
        workflows.add_row(w.workflow, str(w.runs), str(w.completed), str(w.failed),
                          str(w.cancelled), str(w.active), percent(w.success_rate),
                          duration(w.p50), duration(w.p95), tokens(w.tokens), cost(w.cost_usd))
    steps = Table(title="steps", show_edge=False, header_style="bold")
    for column in ("workflow", "step", "count", "failed", "failure rate", "attempts",
                   "failed attempts", "retry rate", "p50", "p95"):
        steps.add_column(column)
    for s in stats.steps:
        steps.add_row(s.workflow, s.name, str(s.count), str(s.failed), percent(s.failure_rate),
                      str(s.attempts), str(s.failed_attempts), percent(s.retry_rate),
                      duration(s.p50), duration(s.p95))
    return Group(workflows, Text(), steps)


def usage_view(groups: Sequence[UsageGroup], by: str) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in (by, "calls", "input", "cached", "output", "reasoning", "cost", "unpriced"):
        table.add_column(column, justify="left" if column == by else "right")
    for group in groups:
        t = group.totals
        table.add_row(group.key, f"{t.calls:,}", f"{t.input_tokens:,}",
                      f"{t.cached_input_tokens:,}", f"{t.output_tokens:,}",
                      f"{t.reasoning_tokens:,}", cost(t.cost_usd), str(t.unpriced_calls))
    return table
