"""Commands for queues and workers: submit, worker, workers, queues, schedule."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from ..errors import ConfigurationError, ScheduleNotFound
from ..logformat import configure as configure_logging
from ..validation import duration as parse_duration
from ..workflow import import_apps
from . import render
from .app import app, command
from .commands import AsJson, InputJson, Inputs, load_target, state_of

Queue = Annotated[str, typer.Option("--queue", help="The queue to submit to.")]


@command("submit")
def submit_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        help="The workflow: package.module:workflow, path/to/file.py:workflow, or a spec "
             "file (.yaml, .yml, .json).")],
    inputs: Inputs = None,
    input_json: InputJson = None,
    queue: Queue = "default",
    priority: Annotated[int, typer.Option(help="Higher runs first (default 0).")] = 0,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Submitting again with this key returns the existing run.")] = None,
    delay: Annotated[str | None, typer.Option(
        help="Hold the run back this long (30s, 5m, 2h).")] = None,
    concurrency_key: Annotated[str | None, typer.Option(
        help="Runs sharing this key obey the queue's per-key limit.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner of the new run.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="TAG", help="A tag for the new run; repeatable.")] = None,
    as_json: AsJson = False,
) -> None:
    """Queue a run for a worker and print its id (it stays pending until claimed)."""
    state = state_of(ctx, creates=True)
    definition, values = load_target(target, inputs, input_json)
    handle = state.ledger.submit(
        definition, inputs=values, queue=queue, priority=priority,
        idempotency_key=idempotency_key, concurrency_key=concurrency_key,
        delay=parse_duration(delay) if delay else None, owner=owner, tags=tag or ())
    if as_json:
        state.print_json({"run_id": handle.id, "status": handle.status().value})
    else:
        state.out.print(handle.id)


@command("worker")
def worker_command(
    ctx: typer.Context,
    queue: Annotated[list[str] | None, typer.Option(
        "--queue", metavar="QUEUE",
        help="A queue to take runs from; repeatable (default: default).")] = None,
    concurrency: Annotated[int, typer.Option(
        help="Runs executed at once by this worker.")] = 4,
    app_module: Annotated[list[str] | None, typer.Option(
        "--app", metavar="MODULE", help="A module to import first (its workflows and fl.schedule "
                      "declarations); repeatable.")] = None,
    lease: Annotated[str, typer.Option(
        help="Lease on each run: another worker takes over a run this long after this "
             "worker falls silent.")] = "30s",
    max_recoveries: Annotated[int, typer.Option(
        help="Resume a run whose worker was lost at most this many times, then fail it.")]
    = 5,
    shutdown_timeout: Annotated[str, typer.Option(
        help="On SIGTERM, wait this long for running steps before handing runs back.")]
    = "30s",
    poll: Annotated[str | None, typer.Option(
        help="How often an idle worker looks for work (default: 1s on PostgreSQL, which "
             "also wakes on NOTIFY; 50ms on SQLite).")] = None,
    suspend_after: Annotated[str, typer.Option(
        help="A run that sleeps or waits for an event longer than this frees its slot "
             "(status waiting) until it is due.")] = "1s",
    log_format: Annotated[str, typer.Option(
        help="This process's log lines: text, or json (one object per line, with the run "
             "id, step position and attempt of the code that logged).")] = "text",
    capture_print: Annotated[bool, typer.Option(
        help="Record what steps print, next to what they log (`flowledger logs`).")]
    = False,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics (derived from the database: every worker shows "
             "the same figures) on this port, at any path.")] = None,
    metrics_host: Annotated[str, typer.Option(
        help="Address the metrics port listens on (no token is asked: keep it private).")]
    = "127.0.0.1",
    redact: Annotated[list[str] | None, typer.Option(
        "--redact", metavar="KEY",
        help="A key whose values this worker replaces by [redacted] before recording them "
             "(any depth, any case); repeatable; added to FLOWLEDGER_REDACT's.")] = None,
    retention_interval: Annotated[str, typer.Option(
        help="How often to apply the retention policies (one worker at a time, by a "
             "lease in the database); 0s: never.")] = "60s",
) -> None:
    """Claim queued runs and execute them until SIGTERM or Ctrl-C (then shut down
    gracefully: running steps finish, unfinished runs go back to their queue)."""
    from ..worker import Worker  # noqa: PLC0415 (start-up time)

    if metrics_port is not None and not 0 < metrics_port < 65536:
        raise ConfigurationError(f"--metrics-port must be between 1 and 65535, not "
                                 f"{metrics_port}")
    state = state_of(ctx, creates=True)
    state.redact = list(redact or [])
    import_apps(app_module or [])
    configure_logging(log_format, quiet=state.quiet)
    if capture_print:
        state.ledger.capture_step_logs(print_output=True)
    worker = Worker(
        ledger=state.ledger, queues=queue or ["default"], concurrency=concurrency,
        lease=parse_duration(lease), max_recoveries=max_recoveries,
        shutdown_timeout=parse_duration(shutdown_timeout),
        poll_interval=parse_duration(poll) if poll else None,
        suspend_after=parse_duration(suspend_after),
        retention_interval=parse_duration(retention_interval).total_seconds() or None)
    # With --log-format json every line on stderr stays one JSON object.
    say = (logging.getLogger("flowledger.worker").info if log_format == "json"
           else state.hint)
    metrics = None
    if metrics_port is not None:
        from ..prometheus import serve_metrics  # noqa: PLC0415 (start-up time)

        metrics = serve_metrics(state.ledger, metrics_port, metrics_host)
        say(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
    say(f"worker {worker.id} on {', '.join(worker.queues)} "
        f"(concurrency {concurrency}); Ctrl-C to stop")
    try:
        worker.run()
    finally:
        if metrics is not None:
            metrics.shutdown()


@command("workers")
def workers_command(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option(
        "--all", help="Also lost workers: no heartbeat within their lease, or their "
                      "process is gone.")] = False,
    as_json: AsJson = False,
) -> None:
    """List live workers: id, host, pid, queues, runs held, last heartbeat."""
    state = state_of(ctx)
    found = state.ledger.workers(include_lost=show_all)
    if as_json:
        state.print_json([dataclasses.asdict(w) for w in found])
        return
    table = Table("worker", "host", "pid", "queues", "held", "concurrency", "state",
                  "last heartbeat", "since", box=None)
    for w in found:
        table.add_row(w.id, w.host, str(w.pid), ", ".join(w.queues), str(w.runs_held),
                      str(w.concurrency), w.state,
                      render.when(w.last_heartbeat), render.when(w.started_at))
    state.show(table, empty=not found,
               nothing="no live workers (start one with: flowledger worker)")


@command("queues")
def queues_command(
    ctx: typer.Context,
    window: Annotated[str, typer.Option(
        help="Throughput over this window (e.g. 5m, 1h).")] = "5m",
    as_json: AsJson = False,
) -> None:
    """Per queue: ready and delayed depth, running, finished and throughput, limits."""
    state = state_of(ctx)
    found = state.ledger.queues(window=parse_duration(window))
    if as_json:
        state.print_json([{**dataclasses.asdict(q), "paused": q.paused} for q in found])
        return
    table = Table("queue", "ready", "delayed", "running", f"done/{window}",
                  f"failed/{window}", "runs/s", "limit", "per key", "rate", "state", box=None)
    for q in found:
        table.add_row(q.name, str(q.ready), str(q.delayed), str(q.running), str(q.completed),
                      str(q.failed), f"{q.per_second:.2f}",
                      "-" if q.concurrency is None else str(q.concurrency),
                      "-" if q.key_concurrency is None else str(q.key_concurrency),
                      (q.rate or "-") + (f" ({q.key_rate} per key)" if q.key_rate else ""),
                      "[yellow]paused[/yellow]" + (f" ({q.pause_reason})" if q.pause_reason
                                                   else "") if q.paused else "claiming")
    state.show(table, empty=not found,
               nothing="no queues yet (queue a run with: flowledger submit)")


@command("queue-limits")
def queue_limits_command(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    concurrency: Annotated[int | None, typer.Option(
        help="At most this many runs of the queue at once, across all workers.")] = None,
    key_concurrency: Annotated[int | None, typer.Option(
        help="At most this many running runs per concurrency key.")] = None,
    rate: Annotated[str | None, typer.Option(
        help="Claim at most this fast across all workers (100/s, 500/min).")] = None,
    key_rate: Annotated[str | None, typer.Option(
        help="Claim runs sharing a concurrency key at most this fast (10/s).")] = None,
) -> None:
    """Set (or, with no option, remove) a queue's concurrency and rate limits."""
    state = state_of(ctx, creates=True)
    state.ledger.set_queue_limits(queue, concurrency=concurrency,
                                  key_concurrency=key_concurrency, rate=rate,
                                  key_rate=key_rate)
    rates = "".join(f", {what} {value}" for what, value in (("rate", rate),
                                                            ("key rate", key_rate)) if value)
    state.out.print(f"{queue}: concurrency {concurrency or 'unlimited'}, per key "
                    f"{key_concurrency or 'unlimited'}{rates}")


queue_app = typer.Typer(help="Pause and resume a queue's claims.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")


@command("pause", queue_app)
def queue_pause_command(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    reason: Annotated[str | None, typer.Option(help="Why (shown by `queues`).")] = None,
) -> None:
    """Stop workers from claiming the queue's runs; runs already executing carry on."""
    state = state_of(ctx, creates=True)
    changed = state.ledger.pause_queue(queue, reason=reason)
    state.out.print(f"{queue}: paused" if changed else f"{queue}: already paused")


@command("resume", queue_app)
def queue_resume_command(ctx: typer.Context,
                         queue: Annotated[str, typer.Argument(help="The queue.")]) -> None:
    """Let workers claim the queue's runs again."""
    state = state_of(ctx)
    changed = state.ledger.resume_queue(queue)
    state.out.print(f"{queue}: resumed" if changed else f"{queue}: was not paused")


schedule_app = typer.Typer(help="Cron schedules: add, list, pause, resume, trigger, remove.",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


@command("add", schedule_app)
def schedule_add_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        help="The workflow: package.module:workflow, path/to/file.py:workflow, or a spec "
             "file (.yaml, .yml, .json).")],
    cron: Annotated[str, typer.Option(
        help="Cron expression, e.g. '*/5 * * * *' (six fields: seconds last), or a macro: "
             "@hourly, @daily, @weekly, @monthly, @yearly.")],
    timezone: Annotated[str | None, typer.Option(
        "--timezone", "--tz", metavar="ZONE",
        help="Read the expression in this IANA time zone, e.g. Europe/Berlin (default: "
             "UTC).")] = None,
    name: Annotated[str | None, typer.Option(
        help="Schedule name (default: the workflow's name); adding it again replaces "
             "it.")] = None,
    inputs: Inputs = None,
    input_json: InputJson = None,
    queue: Queue = "default",
    priority: Annotated[int, typer.Option(help="Priority of the runs it submits.")] = 0,
    catch_up: Annotated[bool, typer.Option(
        help="Fire every tick missed while no worker ran (default: only the latest).")]
    = False,
    as_json: AsJson = False,
) -> None:
    """Submit a workflow on every tick of a cron expression (workers fire the ticks)."""
    state = state_of(ctx, creates=True)
    definition, values = load_target(target, inputs, input_json)
    saved = state.ledger.add_schedule(definition, cron=cron, name=name, inputs=values,
                                      queue=queue, priority=priority, catch_up=catch_up,
                                      timezone=timezone)
    if as_json:
        state.print_json(dataclasses.asdict(saved))
    else:
        state.out.print(f"schedule {saved.name}: next run "
                        f"{_tick(saved.next_fire_at, saved.timezone)}")


def _tick(at: datetime | None, zone: str | None) -> str:
    """A tick as the schedule's zone reads it (this machine's without one), with the
    zone's abbreviation: a cron in Europe/Berlin shows 02:00 CET, not 01:00."""
    if at is None:
        return "—"
    local = at.astimezone(ZoneInfo(zone)) if zone else at.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


@command("ls", schedule_app)
def schedule_ls_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List schedules with their next and last tick."""
    state = state_of(ctx)
    found = state.ledger.schedules()
    if as_json:
        state.print_json([dataclasses.asdict(s) for s in found])
        return
    table = Table("name", "workflow", "cron", "zone", "queue", "next", "last", "last run",
                  box=None)
    for s in found:
        table.add_row(s.name, s.workflow, s.cron, s.timezone or "UTC", s.queue,
                      "paused" if s.paused else _tick(s.next_fire_at, s.timezone),
                      render.when(s.last_fired_at),
                      render.short_id(s.last_run_id) if s.last_run_id else "-")
    state.show(table, empty=not found,
               nothing="no schedules (add one with: flowledger schedule add)")


@command("rm", schedule_app)
def schedule_rm_command(ctx: typer.Context,
                        name: Annotated[str, typer.Argument(help="The schedule's name.")]
                        ) -> None:
    """Remove a schedule (runs it already started are kept)."""
    state = state_of(ctx)
    if not state.ledger.remove_schedule(name):
        raise ScheduleNotFound(f"no schedule named {name!r}")
    state.out.print(f"removed schedule {name}")


ScheduleName = Annotated[str, typer.Argument(help="The schedule's name.")]


@command("pause", schedule_app)
def schedule_pause_command(ctx: typer.Context, name: ScheduleName) -> None:
    """Stop workers from firing a schedule (runs it started carry on)."""
    state = state_of(ctx)
    changed = state.ledger.pause_schedule(name)
    state.out.print(f"{name}: paused" if changed else f"{name}: already paused")


@command("resume", schedule_app)
def schedule_resume_command(ctx: typer.Context, name: ScheduleName) -> None:
    """Fire a paused schedule again, from its next tick (ticks due while paused are
    skipped)."""
    state = state_of(ctx)
    changed = state.ledger.resume_schedule(name)
    state.out.print(f"{name}: resumed" if changed else f"{name}: was not paused")


@command("trigger", schedule_app)
def schedule_trigger_command(ctx: typer.Context, name: ScheduleName,
                             as_json: AsJson = False) -> None:
    """Submit a run of a schedule now, as a tick would; print its id (the next tick is
    unchanged)."""
    state = state_of(ctx)
    handle = state.ledger.trigger_schedule(name)
    if as_json:
        state.print_json({"run_id": handle.id, "schedule": name})
    else:
        state.out.print(handle.id)
