"""Comparisons and statistics over recorded runs: ``Ledger.diff`` and ``Ledger.stats``."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .encryption import SealedPayload
from .errors import PayloadKeyMissing
from .models import Run, RunStatus, Step, StepStatus, record_to_dict


@dataclass(frozen=True)
class StepChange:
    """One position compared between two runs; a side is None where that run has no step."""

    position: int
    a: Step | None
    b: Step | None
    output_changed: bool
    output_diff: str

    @property
    def status_changed(self) -> bool:
        return (self.a.status if self.a else None) != (self.b.status if self.b else None)

    @property
    def duration_change(self) -> timedelta | None:
        if self.a is None or self.b is None or self.a.duration is None or self.b.duration is None:
            return None
        return self.b.duration - self.a.duration

    def to_dict(self) -> dict[str, Any]:
        change = self.duration_change
        return {
            "position": self.position,
            "a": self.a.to_dict() if self.a else None,
            "b": self.b.to_dict() if self.b else None,
            "status_changed": self.status_changed,
            "duration_change": change.total_seconds() if change is not None else None,
            "output_changed": self.output_changed,
            "output_diff": self.output_diff,
        }


@dataclass(frozen=True)
class RunDiff:
    """Two runs compared step by step (``Ledger.diff``)."""

    a: Run
    b: Run
    steps: tuple[StepChange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"a": record_to_dict(self.a) | {"steps": None},
                "b": record_to_dict(self.b) | {"steps": None},
                "steps": [change.to_dict() for change in self.steps]}


def _pretty(value: Any, width: int = 160) -> list[str]:
    lines = json.dumps(value, indent=1, sort_keys=True, default=str).splitlines()
    return [line if len(line) <= width else line[:width - 1] + "…" for line in lines]


def diff_runs(a: Run, b: Run, context: int = 1, max_lines: int = 40) -> RunDiff:
    by_a = {s.position: s for s in a.steps}
    by_b = {s.position: s for s in b.steps}
    changes = []
    for position in sorted(by_a.keys() | by_b.keys()):
        left, right = by_a.get(position), by_b.get(position)
        left_out = left.output if left else None
        right_out = right.output if right else None
        for out in (left_out, right_out):  # two placeholders would compare "same"
            if isinstance(out, SealedPayload):
                raise PayloadKeyMissing(
                    f"the output of step {position} cannot be compared: {out}", out.key_id,
                    out.shredded)
        changed = left_out != right_out or (left is None) != (right is None)
        text = ""
        if left is None or right is None:
            text = f"only in {'b' if left is None else 'a'}"
        elif changed:
            import difflib  # noqa: PLC0415 (start-up time: only comparing runs needs it)

            lines = list(difflib.unified_diff(_pretty(left_out), _pretty(right_out), "a", "b",
                                              n=context, lineterm=""))[2:]
            if len(lines) > max_lines:
                lines = [*lines[:max_lines], f"… {len(lines) - max_lines} more lines"]
            text = "\n".join(lines)
        changes.append(StepChange(position, left, right, changed, text))
    return RunDiff(a, b, tuple(changes))


@dataclass(frozen=True)
class WorkflowStats:
    """Per workflow: run counts by outcome and duration percentiles of finished runs."""

    workflow: str
    runs: int
    completed: int
    failed: int
    cancelled: int
    active: int
    p50: timedelta | None
    p95: timedelta | None
    tokens: int = 0
    cost_usd: float | None = None

    @property
    def success_rate(self) -> float | None:
        finished = self.completed + self.failed + self.cancelled
        return self.completed / finished if finished else None


@dataclass(frozen=True)
class StepStats:
    """Per workflow and step name: executions, failures, attempts and durations.

    ``failed`` counts steps that ended failed; ``failed_attempts`` counts every attempt
    that raised, including those a retry made good; ``retried`` counts steps that
    needed more than one attempt.
    """

    workflow: str
    name: str
    count: int
    failed: int
    p50: timedelta | None
    p95: timedelta | None
    attempts: int = 0
    failed_attempts: int = 0
    retried: int = 0

    @property
    def failure_rate(self) -> float:
        return self.failed / self.count if self.count else 0.0

    @property
    def retry_rate(self) -> float:
        """The share of executions that needed more than one attempt."""
        return self.retried / self.count if self.count else 0.0


@dataclass(frozen=True)
class Stats:
    """What ``Ledger.stats`` returns."""

    workflows: tuple[WorkflowStats, ...]
    steps: tuple[StepStats, ...]

    def to_dict(self) -> dict[str, Any]:
        def row(item: Any, rate: str) -> dict[str, Any]:
            return record_to_dict(item) | {rate: getattr(item, rate)}

        return {"workflows": [row(w, "success_rate") for w in self.workflows],
                "steps": [row(s, "failure_rate") | {"retry_rate": s.retry_rate}
                          for s in self.steps]}


def percentile(sorted_values: Sequence[int], fraction: float) -> timedelta | None:
    """Nearest-rank percentile of durations in microseconds."""
    if not sorted_values:
        return None
    rank = max(math.ceil(fraction * len(sorted_values)) - 1, 0)
    return timedelta(microseconds=sorted_values[rank])


def compute_stats(run_rows: Iterable[Any], step_rows: Iterable[Any],
                  failed_attempts: Iterable[Any] = (),
                  usage_by_workflow: dict[str, tuple[int, float | None]] | None = None) -> Stats:
    outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    durations: dict[str, list[int]] = defaultdict(list)
    for _run_id, workflow, status, started, completed in run_rows:
        outcomes[workflow][status] += 1
        if started is not None and completed is not None and status == RunStatus.COMPLETED:
            durations[workflow].append(completed - started)
    workflows = []
    for name in sorted(outcomes):
        counts = outcomes[name]
        timings = sorted(durations[name])
        tokens, cost = (usage_by_workflow or {}).get(name, (0, None))
        workflows.append(WorkflowStats(
            name, sum(counts.values()), counts[RunStatus.COMPLETED], counts[RunStatus.FAILED],
            counts[RunStatus.CANCELLED],
            counts[RunStatus.RUNNING] + counts[RunStatus.PENDING],
            percentile(timings, 0.5), percentile(timings, 0.95), tokens, cost))

    # count, failed, attempts, retried
    step_counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    step_times: dict[tuple[str, str], list[int]] = defaultdict(list)
    for workflow, name, status, started, completed, tries in step_rows:
        tally = step_counts[(workflow, name)]
        tally[0] += 1
        tally[1] += status == StepStatus.FAILED
        tally[2] += tries
        tally[3] += tries > 1
        if started is not None and completed is not None and status == StepStatus.COMPLETED:
            step_times[(workflow, name)].append(completed - started)
    failures = {(workflow, name): int(n) for workflow, name, n in failed_attempts}
    steps = []
    for key in sorted(step_counts):
        timings = sorted(step_times[key])
        count, failed, tries, retried = step_counts[key]
        steps.append(StepStats(key[0], key[1], count, failed, percentile(timings, 0.5),
                               percentile(timings, 0.95), tries, failures.get(key, 0),
                               retried))
    return Stats(tuple(workflows), tuple(steps))


@dataclass(frozen=True)
class Trends:
    """What ``Ledger.trends`` returns: a window cut into equal buckets, with per bucket
    the runs created by final status, the p50/p95 duration of those that completed, and
    LLM tokens and cost by model and by workflow; plus the window's slowest and most
    failing steps.

    ``starts`` are the buckets' start times (seconds since the epoch, UTC); every series
    has one value per bucket.
    """

    bucket_seconds: int
    starts: tuple[int, ...]
    runs: dict[str, list[int]]
    p50_seconds: list[float | None]
    p95_seconds: list[float | None]
    tokens_by_model: dict[str, list[int]]
    cost_by_model: dict[str, list[float]]
    tokens_by_workflow: dict[str, list[int]]
    cost_by_workflow: dict[str, list[float]]
    slowest_steps: tuple[StepStats, ...]
    failing_steps: tuple[StepStats, ...]

    @property
    def total_runs(self) -> int:
        return sum(sum(series) for series in self.runs.values())

    @property
    def success_rate(self) -> float | None:
        """Completed among finished runs of the window (None when none finished)."""
        done = {name: sum(series) for name, series in self.runs.items()}
        finished = done.get("completed", 0) + done.get("failed", 0) + done.get("cancelled", 0)
        return done.get("completed", 0) / finished if finished else None

    @property
    def total_cost(self) -> float:
        return round(sum(sum(series) for series in self.cost_by_model.values()), 6)

    @property
    def total_tokens(self) -> int:
        return sum(sum(series) for series in self.tokens_by_model.values())

    def to_dict(self) -> dict[str, Any]:
        def steps(items: tuple[StepStats, ...]) -> list[dict[str, Any]]:
            return [record_to_dict(s) | {"failure_rate": s.failure_rate,
                                         "retry_rate": s.retry_rate} for s in items]

        return {"bucket_seconds": self.bucket_seconds, "starts": list(self.starts),
                "runs": self.runs, "p50_seconds": self.p50_seconds,
                "p95_seconds": self.p95_seconds,
                "tokens_by_model": self.tokens_by_model, "cost_by_model": self.cost_by_model,
                "tokens_by_workflow": self.tokens_by_workflow,
                "cost_by_workflow": self.cost_by_workflow,
                "total_runs": self.total_runs, "success_rate": self.success_rate,
                "total_cost": self.total_cost, "total_tokens": self.total_tokens,
                "slowest_steps": steps(self.slowest_steps),
                "failing_steps": steps(self.failing_steps)}


def compute_trends(first_bucket: int, buckets: int, bucket_us: int,
                   counts: Iterable[Any], durations: Iterable[Any], spending: Iterable[Any],
                   steps: Sequence[StepStats], top: int = 10) -> Trends:
    """Series over ``buckets`` buckets from bucket number ``first_bucket``; rows outside
    the window (a run created before it but still listed) are left out."""

    def index(bucket: Any) -> int | None:
        at = int(bucket) - first_bucket
        return at if 0 <= at < buckets else None

    runs: dict[str, list[int]] = {}
    for bucket, status, n in counts:
        at = index(bucket)
        if at is not None:
            runs.setdefault(str(status), [0] * buckets)[at] += int(n)
    per_bucket: list[list[int]] = [[] for _ in range(buckets)]
    for bucket, micros in durations:
        at = index(bucket)
        if at is not None and micros is not None:
            per_bucket[at].append(int(micros))
    p50: list[float | None] = []
    p95: list[float | None] = []
    for values in per_bucket:
        values.sort()
        for series, fraction in ((p50, 0.5), (p95, 0.95)):
            found = percentile(values, fraction)
            series.append(None if found is None else found.total_seconds())
    tokens_model: dict[str, list[int]] = {}
    cost_model: dict[str, list[float]] = {}
    tokens_flow: dict[str, list[int]] = {}
    cost_flow: dict[str, list[float]] = {}
    for bucket, model, workflow, _calls, tokens, cost in spending:
        at = index(bucket)
        if at is None:
            continue
        for key, token_series, cost_series in ((str(model), tokens_model, cost_model),
                                               (str(workflow), tokens_flow, cost_flow)):
            token_series.setdefault(key, [0] * buckets)[at] += int(tokens or 0)
            cost_series.setdefault(key, [0.0] * buckets)[at] += float(cost or 0.0)
    for costs in (cost_model, cost_flow):
        for name, amounts in costs.items():
            costs[name] = [round(amount, 6) for amount in amounts]
    bucket_seconds = bucket_us // 1_000_000
    slowest = sorted((s for s in steps if s.p95 is not None),
                     key=lambda s: s.p95 or timedelta(0), reverse=True)[:top]
    failing = sorted((s for s in steps if s.failed or s.failed_attempts),
                     key=lambda s: (s.failed_attempts, s.failed), reverse=True)[:top]
    return Trends(bucket_seconds,
                  tuple((first_bucket + i) * bucket_seconds for i in range(buckets)),
                  runs, p50, p95, tokens_model, cost_model, tokens_flow, cost_flow,
                  tuple(slowest), tuple(failing))
