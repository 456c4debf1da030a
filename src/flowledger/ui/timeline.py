"""A run's timeline as the browser draws it: one row per step on a shared time axis,
each attempt its own segment, times in milliseconds from the run's start.

Rows are ordered by start time, so steps that ran in parallel sit on rows next to each
other; the browser draws only the rows in view (a canvas), which keeps a 10,000-step run
as smooth as a 10-step one.

Example::

    timeline_of(ledger.get(run_id))["steps"][0]
    # {"p": 1, "n": "fetch", "s": "completed", "t0": 0.0, "t1": 12.5, "a": [...], ...}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..models import Run, RunStatus, Step

_OUTCOMES = {"failed": "failed", "interrupted": "interrupted", "timed_out": "failed"}


def _ms(moment: datetime | None, origin: datetime) -> float | None:
    if moment is None:
        return None
    return round((moment - origin).total_seconds() * 1000, 3)


def _step(step: Step, origin: datetime, now_ms: float) -> dict[str, Any]:
    start = _ms(step.started_at, origin)
    end = _ms(step.completed_at, origin)
    attempts = []
    for attempt in step.attempt_history:
        a0 = _ms(attempt.started_at, origin)
        a1 = _ms(attempt.completed_at, origin)
        if a0 is None:
            continue
        attempts.append([a0, a1 if a1 is not None else now_ms,
                         _OUTCOMES.get(str(attempt.outcome), str(attempt.outcome)),
                         attempt.number])
    cost = sum(u.cost_usd or 0.0 for u in step.usage)
    tokens = sum(u.input_tokens + u.output_tokens for u in step.usage)
    return {"p": step.position, "n": step.name, "s": str(step.status),
            "t0": start, "t1": end if end is not None else (now_ms if start is not None
                                                            else None),
            "open": end is None, "a": attempts, "tries": step.attempts,
            "cost": round(cost, 6) if step.usage else None, "tokens": tokens or None,
            "child": step.child_run_id,
            "err": step.error.type if step.error else None}


def timeline_of(run: Run, now: datetime | None = None) -> dict[str, Any]:
    """The run's steps for the timeline widget (JSON-ready)."""
    origin = run.started_at or run.created_at
    # A paused run's clock stops at its pause (until a resume): nothing runs meanwhile.
    resting = run.status is RunStatus.PAUSED
    if now is None:
        now = run.completed_at or (run.paused_at if resting else None) \
            or datetime.now(origin.tzinfo)
    now_ms = _ms(now, origin) or 0.0
    steps = [_step(step, origin, now_ms) for step in run.steps]
    steps.sort(key=lambda s: (s["t0"] is None, s["t0"] or 0.0, s["p"]))
    ends = [s["t1"] for s in steps if s["t1"] is not None]
    live = run.completed_at is None and not resting
    return {"run": run.id, "status": str(run.status), "origin": origin.isoformat(),
            "span": max([now_ms if live else 0.0, *ends, 1.0]),
            "live": live, "steps": steps,
            "failed_attempts": sum(1 for s in steps for a in s["a"]
                                   if a[2] in ("failed", "interrupted"))}
