"""Print a run's persisted trace, read from the ledger alone (no live process involved).

    python examples/show_run.py RUN_ID
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import flowledger as fl

BAR_WIDTH = 30


def _ms(value: timedelta | None) -> str:
    return "-" if value is None else f"{value.total_seconds() * 1000:.1f} ms"


def _short(value: object, width: int = 48) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def render(run: fl.Run) -> str:
    lines = [
        f"run       {run.id}",
        f"workflow  {run.workflow} v{run.version}   ({run.entrypoint})",
        f"status    {run.status.value}   owner {run.owner}   duration {_ms(run.duration)}",
        f"steps     {run.counts.total} total, {run.counts.completed} completed, "
        f"{run.counts.failed} failed, {run.counts.skipped} skipped",
    ]
    if run.recovery_attempts:
        lines.append(f"resumed   {run.recovery_attempts}x, last from position "
                     f"{run.resumed_from_position} at {run.resumed_at:%H:%M:%S}")
    if run.error:
        lines.append(f"error     {run.error.type}: {run.error.message}")
    lines.append("")
    lines.append(f"{'pos':>4}  {'step':<16} {'status':<10} {'att':>3} {'duration':>10}  "
                 f"{'timeline':<{BAR_WIDTH}}  output")
    start = run.started_at
    total = run.duration.total_seconds() if run.duration else None
    for step in run.steps:
        bar = ""
        if start and total and step.started_at:
            begin = (step.started_at - start).total_seconds() / total
            length = (step.duration.total_seconds() / total) if step.duration else 0
            offset = min(int(begin * BAR_WIDTH), BAR_WIDTH - 1)
            bar = " " * offset + "█" * max(1, int(length * BAR_WIDTH))
        lines.append(f"{step.position:>4}  {step.name:<16} {step.status.value:<10} "
                     f"{step.attempts:>3} {_ms(step.duration):>10}  {bar[:BAR_WIDTH]:<{BAR_WIDTH}}"
                     f"  {_short(step.output)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with fl.Ledger() as ledger:
        try:
            run = ledger.get(argv[0])
        except fl.RunNotFound as exc:
            print(f"error: {exc} in {ledger.url}", file=sys.stderr)
            return 3
    print(render(run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
