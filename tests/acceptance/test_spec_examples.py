"""The example specs (examples/specs/) run offline end to end, as a new user runs them:
``examples/specs/run_all.py`` in a real process, then the ledger it leaves is read back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flowledger as fl
from tests.helpers.procs import CHILD_PATH, ROOT


def test_the_example_specs_run_offline_and_record_what_they_did(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "examples/specs/run_all.py", "--ledger-dir",
                           str(tmp_path)], check=False, cwd=ROOT, capture_output=True,
                          text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=CHILD_PATH))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 5 runs completed" in done.stdout
    with fl.Ledger(f"sqlite:///{tmp_path / 'flowledger.db'}") as ledger:
        runs = {run.workflow: [] for run in ledger.runs().runs}  # type: dict[str, list[fl.Run]]
        for run in reversed(ledger.runs().runs):
            runs[run.workflow].append(ledger.get(run.id))
        assert all(run.status is fl.RunStatus.COMPLETED for group in runs.values()
                   for run in group)

        first, again = runs["support_agent_pipeline"]
        calls = [usage for step in first.steps for usage in step.usage]
        assert {usage.provider for usage in calls} == {"openai", "anthropic"}
        assert all(usage.input_tokens > 0 and (usage.cost_usd or 0) > 0 for usage in calls)
        hits = [usage for step in again.steps for usage in step.usage if usage.cache_hit]
        assert hits and all(usage.cost_usd == 0 for usage in hits)
        assert (again.usage.cost_usd or 0) < (first.usage.cost_usd or 0)  # type: ignore[union-attr]

        (content,) = runs[next(name for name in runs if "content" in name)]
        drafts = [step for step in content.steps if step.name.startswith("draft[")]
        assert len(drafts) >= 3 and content.context

        (runbook,) = runs[next(name for name in runs if "runbook" in name)]
        assert runbook.artifacts
        assert any(step.input and "argv" in step.input for step in runbook.steps)

        (tools,) = runs[next(name for name in runs if "tool" in name or "mcp" in name)]
        assert any(step.input and step.input.get("tool") == "add_label"
                   for step in tools.steps)
        assert tools.context
