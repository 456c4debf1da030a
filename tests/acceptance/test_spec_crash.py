"""A spec run in a real ``flowledger run`` process is SIGKILLed inside a for_each fan-out
or a DAG branch, its file is edited, and another process resumes it: completed steps
never run again, and the output equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers.gate import wait_for_file
from tests.helpers.procs import CHILD_PATH, ROOT
from tests.helpers.workers import wait_until

STEP = "tests.helpers.spec_steps:maybe_block"
SPEC = textwrap.dedent(f"""
    flowledger: 1
    name: crashy-spec
    inputs:
      log: {{type: string}}
      gate: {{type: string}}
      where: {{type: string, enum: [nowhere, fan, branch]}}
    steps:
      - id: start
        python: {STEP}
        with: {{path: "{{{{ inputs.log }}}}", text: start, gate: "", block: false}}
      - id: fan
        for_each: [0, 1, 2, 3, 4, 5]
        concurrency: 2
        python: {STEP}
        with:
          path: "{{{{ inputs.log }}}}"
          text: "fan {{{{ item }}}}"
          gate: "{{{{ inputs.gate }}}}"
          block: "{{{{ inputs.where == 'fan' and item == 3 }}}}"
      - id: left
        needs: [fan]
        python: {STEP}
        with: {{path: "{{{{ inputs.log }}}}", text: left, gate: "{{{{ inputs.gate }}}}",
               block: "{{{{ inputs.where == 'branch' }}}}"}}
      - id: right
        needs: [fan]
        shell: [python3, -c, "import sys; open(sys.argv[1], 'a').write('right\\\\n')",
                "{{{{ inputs.log }}}}"]
      - id: join
        needs: [left, right]
        python: {STEP}
        with: {{path: "{{{{ inputs.log }}}}", text: join, gate: "", block: false}}
    output:
      fan: "{{{{ steps.fan.output }}}}"
      branches: ["{{{{ steps.left.output }}}}", "{{{{ steps.right.output.exit_code }}}}"]
      join: "{{{{ steps.join.output }}}}"
    """)


def flowledger(db_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flowledger", "--db", db_url, *args],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=CHILD_PATH),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> object:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out)


def inputs(log: Path, gate: Path, where: str) -> list[str]:
    return ["-i", f"log={log}", "-i", f"gate={gate}", "-i", f"where={where}"]


@pytest.mark.parametrize("where", ["fan", "branch"])
def test_sigkill_inside_a_spec_then_resume_from_the_recorded_text(
        db_url: str, tmp_path: Path, where: str) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(SPEC)
    reference = finish(flowledger(f"sqlite:///{tmp_path / 'reference.db'}", "run", str(file),
                                  *inputs(tmp_path / "reference.log", tmp_path / "x", "nowhere")))

    log, gate = tmp_path / "side-effects.log", tmp_path / "gate"
    victim = flowledger(db_url, "run", str(file), *inputs(log, gate, where))
    wait_for_file(str(gate) + ".arrived")
    with fl.Ledger(db_url) as ledger:
        run_id = ledger.runs(workflow="crashy-spec").runs[0].id
        if where == "branch":  # the other branch completes before the kill
            wait_until(lambda: any(s.name == "right" and s.status is fl.StepStatus.COMPLETED
                                   for s in ledger.get(run_id).steps),
                       what="the right branch to complete")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(30) == -signal.SIGKILL
        crashed = ledger.get(run_id)
        assert crashed.status is fl.RunStatus.RUNNING
        done = {s.name for s in crashed.steps if s.status is fl.StepStatus.COMPLETED}
        in_flight = {s.name for s in crashed.steps if s.status is fl.StepStatus.RUNNING}
        assert in_flight >= {"fan[3]" if where == "fan" else "left"}
        positions = [(s.position, s.name) for s in crashed.steps]

    # The file changes between the crash and the resume: the run keeps its recorded text.
    file.write_text(SPEC.replace("text: join", "text: EDITED").replace("name: crashy-spec",
                                                                       "name: renamed"))
    gate.write_text("")
    resumed = finish(flowledger(db_url, "resume", run_id))
    assert resumed == reference

    ran = Counter(log.read_text().splitlines())
    label = {"start": "start", "left": "left", "right": "right", "join": "join",
             **{f"fan[{i}]": f"fan {i}" for i in range(6)}}
    for name in done:
        assert ran[label[name]] == 1, f"completed step {name} ran again: {ran}"
    assert set(ran) == set(label.values())  # everything ran; EDITED never did
    assert all(count <= 2 for count in ran.values()), ran
    with fl.Ledger(db_url) as ledger:
        after = ledger.get(run_id)
        assert after.status is fl.RunStatus.COMPLETED and after.workflow == "crashy-spec"
        # Positions are assigned as before the crash: the same names at the same places.
        assert [(s.position, s.name) for s in after.steps][:len(positions)] == positions
        assert [s.name for s in after.steps] == [
            "start", *(f"fan[{i}]" for i in range(6)), "left", "right", "join"]
