"""flowledger validate, run and submit of spec files, and the spec commands, on both
backends."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import yaml

import flowledger as fl
from tests.cli.conftest import CLI

SPEC = textwrap.dedent("""
    flowledger: 1
    name: cli-spec
    inputs:
      n: {type: integer}
      label: {type: string, default: none}
    steps:
      - id: double
        python: tests.helpers.spec_steps:double
        with: {x: "{{ inputs.n }}"}
    output: {doubled: "{{ steps.double.output }}", label: "{{ inputs.label }}"}
    """)
BROKEN = textwrap.dedent("""
    flowledger: 1
    name: broken
    steps:
      - id: a
        llm: {provider: openai, messages: [{role: user, content: hi}]}
      - id: b
        needs: [c]
        shell: [echo]
        retries: -1
    """)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_validate_reports_each_problem_with_its_place(cli: CLI, tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", SPEC)
    bad = write(tmp_path, "bad.yaml", BROKEN)
    ok = cli("validate", str(good))
    assert ok.code == 0, ok.err
    assert "good.yaml: ok — cli-spec version" in ok.out and "1 step in 1 wave" in ok.out
    result = cli("validate", str(good), str(bad))
    assert result.code == 2
    assert result.err.splitlines() == [
        f"{bad}:6:10 steps[0].llm.model: required",
        f"{bad}:8:13 steps[1].needs[0]: unknown step 'c'",
        f"{bad}:10:14 steps[1].retries: must be at least 0",
    ]
    as_json = cli("validate", str(bad), "--json")
    assert as_json.code == 2
    assert as_json.json()[0]["valid"] is False and len(as_json.json()[0]["problems"]) == 3
    missing = cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "does not exist" in missing.err


def test_run_and_submit_a_spec_file(cli: CLI, db_url: str, tmp_path: Path) -> None:
    file = write(tmp_path, "flow.yaml", SPEC)
    result = cli("run", str(file), "-i", "n=21", "-i", "label=5")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"doubled": 42, "label": "5"}  # a string input stays text
    bad_input = cli("run", str(file), "-i", "n=many")
    assert bad_input.code == 2 and "n" in bad_input.err
    broken = cli("run", str(write(tmp_path, "bad.yaml", BROKEN)))
    assert broken.code == 2
    assert [line.split(" ", 2)[1] for line in broken.err.splitlines()] == [
        f"{tmp_path / 'bad.yaml'}:6:10", f"{tmp_path / 'bad.yaml'}:8:13",
        f"{tmp_path / 'bad.yaml'}:10:14"]
    queued = cli("submit", str(file), "-i", "n=1", "--queue", "specs", "--json")
    assert queued.code == 0, queued.err
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(queued.json()["run_id"])
        assert (run.status, run.workflow) == (fl.RunStatus.PENDING, "cli-spec")
        assert run.entrypoint == f"spec:{fl.parse_spec(SPEC).digest}"
        assert len(ledger.runs(workflow="cli-spec").runs) == 2  # the bad input recorded nothing


def test_spec_schema_is_a_json_schema_of_the_format(cli: CLI) -> None:
    result = cli("spec", "schema")
    assert result.code == 0
    schema = result.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(SPEC), schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors({"name": "x"}))
    assert errors  # no format version, no steps


def test_register_list_show_and_remove(cli: CLI, tmp_path: Path) -> None:
    versioned = SPEC.replace("name: cli-spec", "name: cli-spec\nversion: '1'")
    file = write(tmp_path, "flow.yaml", versioned)
    registered = cli("spec", "register", str(file), "--json")
    assert registered.code == 0, registered.err
    assert registered.json()["version"] == "1" and "text" not in registered.json()
    assert registered.json()["already_registered"] is False
    again = cli("spec", "register", str(file))  # the same text: nothing changes
    assert again.code == 0 and again.out.startswith("already registered: cli-spec version 1")
    file.write_text(file.read_text().replace("x: ", "x:  "))
    conflict = cli("spec", "register", str(file))
    assert conflict.code == 1 and "already registered" in conflict.err
    listed = cli("spec", "ls", "--json").json()
    assert [(s["name"], s["version"]) for s in listed] == [("cli-spec", "1")]
    table = cli("spec", "ls")
    assert "cli-spec" in table.out and "default" in table.out
    shown = cli("spec", "show", "cli-spec")
    assert shown.code == 0 and shown.out.startswith("\nflowledger: 1\nname: cli-spec")
    assert cli("spec", "show", "cli-spec", "--version", "9").code == 3
    other = write(tmp_path, "other.yaml", SPEC.replace("name: cli-spec", "name: theirs"))
    assert cli("spec", "register", str(other), "--owner", "alice").code == 0
    assert cli("spec", "show", "theirs").code == 3  # another owner's, unless asked
    assert cli("spec", "show", "theirs", "--owner", "alice").out.startswith("\nflowledger")
    assert cli("spec", "rm", "theirs", "--owner", "alice").code == 0
    assert cli("spec", "rm", "cli-spec", "--version", "9").code == 3
    removed = cli("spec", "rm", "cli-spec")
    assert removed.code == 0 and "unregistered 1 version of cli-spec" in removed.out
    assert cli("spec", "ls", "--json").json() == []
