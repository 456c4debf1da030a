"""Spec validation: every broken spec is refused with the line, column and path of each
problem and a message that says what is wrong; valid specs parse to their waves; the JSON
Schema agrees with the parser."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from flowledger.errors import ConfigurationError
from flowledger.specs import SpecError, load_spec, parse_spec, spec_schema

ROOT = Path(__file__).resolve().parents[2]


def spec(text: str) -> str:
    return textwrap.dedent(text)


def one_step(step: str, top: str = "") -> str:
    """A spec with ``top`` fields and one step (``step`` is the step's YAML, unindented)."""
    return ("flowledger: 1\nname: t\n" + textwrap.dedent(top) + "steps:\n"
            + textwrap.indent(textwrap.dedent(step), "    ").replace("    ", "  - ", 1))


def problems_of(text: str, file: str = "flow.yaml") -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, file)
    return [str(problem) for problem in caught.value.problems]


BROKEN = [
    # -- the document ------------------------------------------------------------------
    pytest.param(spec("""\
        name: t
        steps: [{id: a, shell: [echo]}]
        """), "1:1", "flowledger", "required", id="missing-flowledger"),
    pytest.param(spec("""\
        flowledger: 2
        name: t
        steps: [{id: a, shell: [echo]}]
        """), "1:13", "flowledger", "must be 1", id="wrong-format-version"),
    pytest.param(spec("""\
        flowledger: true
        name: t
        steps: [{id: a, shell: [echo]}]
        """), "1:13", "flowledger", "must be 1", id="format-version-true-is-not-1"),
    pytest.param(spec("""\
        flowledger: 1
        steps: [{id: a, shell: [echo]}]
        """), "1:1", "name", "required", id="missing-name"),
    pytest.param("flowledger: 1\nname: t\n", "1:1", "steps", "required", id="missing-steps"),
    pytest.param("flowledger: 1\nname: t\nsteps: []\n", "3:8", "steps", "must not be empty",
                 id="empty-steps"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        stepz: []
        steps: [{id: a, shell: [echo]}]
        """), "3:1", "stepz", "unknown field (did you mean 'steps'?)",
        id="unknown-top-level-field"),
    pytest.param("- flowledger: 1\n- name: t\n", "1:1", "", "a spec is a mapping",
                 id="list-not-mapping"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        name: u
        steps: [{id: a, shell: [echo]}]
        """), "3:1", "name", "duplicate key (first at line 2)", id="duplicate-yaml-key"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        steps:
          - id: a
            shell: [echo
        """), "6:1", "", "not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 5, column 12)", id="invalid-yaml"),
    pytest.param(spec("""\
        {
          "flowledger": 1,
          "name": "t"
          "steps": []
        }
        """), "4:3", "", "not valid JSON: Expecting ',' delimiter", id="invalid-json"),
    pytest.param(spec("""\
        flowledger: 1
        name: !!binary aGVsbG8=
        steps: [{id: a, shell: [echo]}]
        """), "2:7", "name", "is not a JSON value", id="yaml-tag-not-a-json-value"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        deadline: 0
        steps: [{id: a, shell: [echo]}]
        """), "3:11", "deadline", "must be positive", id="zero-deadline"),
    # -- inputs, env, servers ----------------------------------------------------------
    pytest.param(one_step("id: a\nshell: [echo]\n", """\
        inputs:
          n: {type: int}
        """), "4:13", "inputs.n.type", "must be 'string', 'integer', 'number'",
        id="input-unknown-type"),
    pytest.param(one_step("id: a\nshell: [echo]\n", """\
        inputs:
          ok: {type: integer}
          1n: {type: integer}
        """), "5:3", "inputs.1n", "must be an identifier", id="input-name-not-identifier"),
    pytest.param(one_step("id: a\nshell: [echo]\n", "env: [API_TOKEN, 1BAD]\n"),
                 "3:18", "env[1]", "'1BAD' is not an environment variable name",
                 id="env-name"),
    pytest.param(one_step("id: a\nmcp: {server: tracker, tool: t}\n", """\
        mcp_servers:
          tracker:
            command: [python, -m, tracker]
            url: http://127.0.0.1:9000/mcp
        """), "6:5", "mcp_servers.tracker.url", "give command (stdio) or url",
        id="mcp-server-command-and-url"),
    # -- step shape --------------------------------------------------------------------
    pytest.param(one_step("id: a\nretries: 1\n"), "4:5", "steps[0]",
                 "a step needs one kind: python, shell, http, llm, mcp, workflow, set",
                 id="step-without-kind"),
    pytest.param(one_step("id: a\nshell: [echo]\npython: m:f\n"), "4:5", "steps[0]",
                 "a step has one kind, this one has python and shell", id="step-two-kinds"),
    pytest.param(one_step("id: a\nshell: [echo]\nretry: 3\n"), "6:5", "steps[0].retry",
                 "unknown field (did you mean 'retries'?)", id="unknown-step-field"),
    pytest.param(one_step("shell: [echo]\n"), "4:5", "steps[0].id", "required",
                 id="step-without-id"),
    pytest.param(one_step("id: 1st-step\nshell: [echo]\n"), "4:9", "steps[0].id",
                 "step ids are identifiers", id="step-id-not-identifier"),
    pytest.param(one_step("id: a\nshell: echo hi\n"), "5:12", "steps[0].shell",
                 "must be a list", id="shell-not-a-list"),
    pytest.param(one_step("id: a\nshell: [echo]\ntimeout: 10 parsecs\n"), "6:14",
                 "steps[0].timeout", "number of seconds or e.g. 30s, 5m, 2h, not '10 parsecs'",
                 id="bad-duration"),
    pytest.param(one_step("id: a\nshell: [echo]\nretries: -1\n"), "6:14", "steps[0].retries",
                 "must be at least 0", id="negative-retries"),
    pytest.param(one_step("id: a\nshell: [echo]\nretries: true\n"), "6:14",
                 "steps[0].retries", "must be an integer", id="retries-true-is-not-1"),
    pytest.param(one_step("id: a\nconcurrency: 2\nshell: [echo]\n"), "5:5",
                 "steps[0].concurrency", "applies to for_each steps only",
                 id="concurrency-without-for_each"),
    pytest.param(one_step("id: a\nshell: [echo]\nwith: {x: 1}\n"), "6:5", "steps[0].with",
                 "gives arguments to python and workflow steps, not to shell steps",
                 id="with-on-shell-step"),
    pytest.param(one_step("id: a\npython: mypkg.analyze\n"), "5:13", "steps[0].python",
                 "names a function as module:function", id="python-without-colon"),
    pytest.param(one_step("id: a\nhttp: {method: FETCH, url: 'http://x'}\n"), "5:20",
                 "steps[0].http.method", "unknown HTTP method 'FETCH'", id="bad-http-method"),
    pytest.param(one_step("""\
        id: a
        http:
          url: http://127.0.0.1/x
          json: {a: 1}
          body: hi
        """), "8:7", "steps[0].http.body", "give json or body, not both",
        id="http-json-and-body"),
    pytest.param(one_step("""\
        id: a
        llm:
          provider: openai
          messages: [{role: user, content: hi}]
        """), "6:7", "steps[0].llm.model", "required", id="llm-without-model"),
    pytest.param(one_step("""\
        id: a
        llm: {provider: gemini, model: x, messages: [{role: user, content: hi}]}
        """), "5:21", "steps[0].llm.provider", "must be 'openai' or 'anthropic'",
        id="llm-bad-provider"),
    pytest.param(one_step("""\
        id: a
        llm:
          model: x
          messages:
            - {role: robot, content: hi}
        """), "8:18", "steps[0].llm.messages[0].role",
        "must be 'system', 'user' or 'assistant'", id="llm-message-bad-role"),
    pytest.param(one_step("id: a\nllm: {model: x, messages: []}\n"), "5:31",
                 "steps[0].llm.messages", "must not be empty", id="llm-no-messages"),
    pytest.param(one_step("id: a\nmcp: {server: tracker, tool: add_label}\n"), "5:19",
                 "steps[0].mcp.server", "unknown MCP server 'tracker' (declare it under "
                 "mcp_servers:)", id="mcp-undeclared-server"),
    # -- the graph ---------------------------------------------------------------------
    pytest.param(spec("""\
        flowledger: 1
        name: t
        steps:
          - id: a
            shell: [echo]
          - id: a
            shell: [echo]
        """), "6:9", "steps[1].id", "duplicate step id 'a' (first at line 4)",
        id="duplicate-step-ids"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        steps:
          - id: fetch
            shell: [echo]
          - id: b
            needs: [fetc]
            shell: [echo]
        """), "7:13", "steps[1].needs[0]", "unknown step 'fetc' (did you mean 'fetch'?)",
        id="unknown-needs"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        steps:
          - id: a
            needs: [b]
            shell: [echo]
          - id: b
            needs: [a]
            shell: [echo]
        """), "5:12", "steps[0].needs", "cycle: a → b → a", id="cycle"),
    pytest.param(one_step("id: a\nneeds: [a]\nshell: [echo]\n"), "5:13", "steps[0].needs[0]",
                 "a step cannot need itself", id="needs-itself"),
    # -- expressions -------------------------------------------------------------------
    pytest.param(one_step("id: a\nshell: [echo, '{{ steps.nope.output }}']\n"), "5:19",
                 "steps[0].shell[1]", "unknown step 'nope'", id="expression-unknown-step"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        steps:
          - id: a
            shell: [echo, "{{ steps.b.output }}"]
          - id: b
            shell: [echo]
        """), "5:19", "steps[0].shell[1]",
        "refers to step 'b', which does not run before this step (add it to needs)",
        id="expression-later-step"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        steps:
          - id: a
            shell: [echo]
          - id: b
            needs: []
            shell: [echo, "{{ steps.a.output }}"]
        """), "8:19", "steps[1].shell[1]", "refers to step 'a', which does not run before",
        id="expression-step-not-needed"),
    pytest.param(one_step("id: a\nshell: [echo, '{{ inputs.isue }}']\n", """\
        inputs:
          issue: {type: integer}
        """), "7:19", "steps[0].shell[1]", "unknown input 'isue' (did you mean 'issue'?)",
        id="expression-undeclared-input"),
    pytest.param(one_step("id: a\nshell: [echo, '{{ env.HOME }}']\n", "env: [API_TOKEN]\n"),
                 "6:19", "steps[0].shell[1]",
                 "environment variable 'HOME' is not declared under env:",
                 id="expression-undeclared-env"),
    pytest.param(one_step("id: a\nshell: [echo, '{{ item }}']\n"), "5:19", "steps[0].shell[1]",
                 "item and index exist only in for_each steps", id="item-outside-for_each"),
    pytest.param(one_step("id: a\nfor_each: [1, 2]\nif: '{{ index > 0 }}'\nshell: [echo]\n"),
                 "6:9", "steps[0].if", "item and index are not defined in if: (it is "
                 "evaluated once, before the items)", id="index-in-if-of-for_each"),
    pytest.param(one_step("id: a\nshell: [echo, '{{ inputs. }}']\n"), "5:19",
                 "steps[0].shell[1]", "bad expression: expected name or number",
                 id="bad-jinja-syntax"),
    pytest.param(one_step("id: a\nshell: [echo, '{{ foo.bar }}']\n"), "5:19",
                 "steps[0].shell[1]", "unknown name 'foo' in '{{ foo.bar }}' (expressions "
                 "see context, env, index, inputs, item, run, steps)",
                 id="expression-unknown-name"),
    pytest.param(one_step("id: a\nshell: [echo, \"{% include '/etc/passwd' %}\"]\n"), "5:19",
                 "steps[0].shell[1]", "expressions cannot include or import templates",
                 id="expression-include"),
    pytest.param(spec("""\
        flowledger: 1
        name: t
        steps:
          - id: a
            shell: [echo]
        output: "{{ steps.b.output }}"
        """), "6:9", "output", "unknown step 'b'", id="output-unknown-step"),
]


@pytest.mark.parametrize(("text", "where", "path", "message"), BROKEN)
def test_broken_specs_are_refused_with_the_place_of_the_problem(
        text: str, where: str, path: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "flow.yaml")
    line, column = (int(part) for part in where.split(":"))
    found = [problem for problem in caught.value.problems
             if (problem.line, problem.column, problem.path) == (line, column, path)
             and message in problem.message]
    assert found, "\n".join(str(problem) for problem in caught.value.problems)
    problem = found[0]
    prefix = f"flow.yaml:{where} {path}: " if path else f"flow.yaml:{where} "
    assert str(problem) == prefix + problem.message
    assert str(problem) in str(caught.value)


def test_the_table_covers_enough_cases() -> None:
    assert len(BROKEN) >= 30


def test_independent_mistakes_are_all_reported_sorted_by_line() -> None:
    text = spec("""\
        flowledger: 1
        name: t
        stepz: 1
        steps:
          - id: a
            shell: [echo]
            retries: -1
          - id: b
            timeout: 10 parsecs
            shell: [echo]
        """)
    assert problems_of(text) == [
        "flow.yaml:3:1 stepz: unknown field (did you mean 'steps'?)",
        "flow.yaml:7:14 steps[0].retries: must be at least 0",
        "flow.yaml:9:14 steps[1].timeout: duration must be a number of seconds or e.g. 30s, "
        "5m, 2h, not '10 parsecs'",
    ]


def test_independent_expression_mistakes_are_all_reported() -> None:
    text = spec("""\
        flowledger: 1
        name: t
        steps:
          - id: c
            shell: [echo, "{{ item }}"]
          - id: a
            shell: [echo, "{{ inputs.x }}"]
          - id: b
            shell: [echo, "{{ env.X }}"]
        """)
    problems = problems_of(text)
    assert [problem.split(" ")[0] for problem in problems] == [
        "flow.yaml:5:19", "flow.yaml:7:19", "flow.yaml:9:19"]
    assert "item and index" in problems[0]
    assert "unknown input 'x'" in problems[1]
    assert "environment variable 'X'" in problems[2]


def test_json_specs_point_at_their_lines_even_with_tabs() -> None:
    document = {"flowledger": 1, "name": "t",
                "steps": [{"id": "a", "shell": ["echo"], "retries": -1}]}
    for indent in (2, "\t"):
        text = json.dumps(document, indent=indent)
        line = next(number for number, row in enumerate(text.splitlines(), 1)
                    if '"retries"' in row)
        [problem] = problems_of(text, "flow.json")
        assert problem.startswith(f"flow.json:{line}:")
        assert problem.endswith("steps[0].retries: must be at least 0")


def test_json_specs_keep_json_numbers() -> None:
    # YAML 1.1 reads 1e1 as a string; a JSON spec means the number.
    text = json.dumps({"flowledger": 1, "name": "t",
                       "steps": [{"id": "a", "shell": ["echo"], "timeout": 1}]})
    parsed = parse_spec(text.replace('"timeout": 1', '"timeout": 1e1'), "flow.json")
    assert parsed.model.steps[0].timeout == 10.0


def test_yaml_alias_bombs_and_cycles_are_refused_quickly() -> None:
    bomb = "flowledger: 1\nname: t\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n"
    for level in range(1, 9):
        bomb += f"x{level}: &x{level} [" + ", ".join([f"*x{level - 1}"] * 10) + "]\n"
    bomb += "steps: [{id: a, shell: [echo]}]\n"
    assert "more than 100000 values" in problems_of(bomb)[0]
    cycle = "flowledger: 1\nname: t\nx: &x [*x]\nsteps: [{id: a, shell: [echo]}]\n"
    assert problems_of(cycle) == [
        "flow.yaml:3:4 x[0]: an alias refers to a value that contains it"]


def test_empty_missing_and_undecodable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(SpecError) as caught:
        load_spec(empty)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{empty}:1:1 the file is empty"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"flowledger: 1\nname: \xff\xfe\n")
    with pytest.raises(ConfigurationError, match=r"cannot read spec file .*utf-8"):
        load_spec(binary)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")


# -- a valid spec ------------------------------------------------------------------------

VALID = spec("""\
    flowledger: 1
    name: issue-triage
    version: "3"
    inputs:
      issue: {type: integer}
      repo: {type: string, default: acme/app}
    defaults: {retries: 2, timeout: 60s, backoff: 1s}
    env: [API_TOKEN]
    mcp_servers:
      tracker: {command: [python, -m, tracker_server]}
    steps:
      - id: fetch
        http:
          method: GET
          url: "http://127.0.0.1:8080/{{ inputs.repo }}/issues/{{ inputs.issue }}"
        retries: 4
      - id: classify
        llm:
          provider: openai
          model: gpt-4o-mini
          messages:
            - {role: system, content: "Answer bug or feature."}
            - {role: user, content: "{{ steps.fetch.output.json.title }}"}
          cache: true
      - id: label
        if: "{{ steps.classify.output.text == 'bug' }}"
        mcp:
          {server: tracker, tool: add_label, arguments: {issue: "{{ inputs.issue }}", label: bug}}
      - id: per_file
        needs: [fetch]
        for_each: "{{ steps.fetch.output.json.files }}"
        concurrency: 4
        python: mypkg.analysis:analyze
        with: {path: "{{ item }}", position: "{{ index }}"}
      - id: remember
        needs: [classify]
        set: {label: "{{ steps.classify.output.text }}"}
      - id: notify
        needs: [label, per_file]
        shell: [./notify.sh, "{{ context.label }}"]
        timeout: 10s
    output: {label: "{{ context.label }}", files: "{{ steps.per_file.output | length }}"}
    """)


def test_a_valid_spec_parses_with_its_waves() -> None:
    parsed = parse_spec(VALID, "flow.yaml")
    assert (parsed.name, parsed.version, parsed.file) == ("issue-triage", "3", "flow.yaml")
    assert parsed.step_ids == ["fetch", "classify", "label", "per_file", "remember", "notify"]
    assert parsed.needs == {"fetch": [], "classify": ["fetch"], "label": ["classify"],
                            "per_file": ["fetch"], "remember": ["classify"],
                            "notify": ["label", "per_file"]}
    # fetch; then classify and per_file; then label and remember; then notify
    assert parsed.waves == ((0,), (1, 3), (2, 4), (5,))
    steps = parsed.model.steps
    assert [step.kind for step in steps] == ["http", "llm", "mcp", "python", "set", "shell"]
    assert steps[2].when == "{{ steps.classify.output.text == 'bug' }}"
    assert steps[3].arguments == {"path": "{{ item }}", "position": "{{ index }}"}
    assert parsed.model.inputs["repo"].required is False
    assert parsed.model.inputs["issue"].required is True


def test_the_default_version_is_the_texts_digest() -> None:
    text = VALID.replace('version: "3"\n', "")
    parsed = parse_spec(text, "flow.yaml")
    assert re.fullmatch(r"[0-9a-f]{12}", parsed.version)
    assert parsed.version == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert parse_spec(text + "# changed\n").version != parsed.version


def test_the_same_spec_as_json_parses_to_the_same_model() -> None:
    as_yaml = parse_spec(VALID, "flow.yaml")
    as_json = parse_spec(json.dumps(yaml.safe_load(VALID), indent=2), "flow.json")
    assert as_json.model == as_yaml.model
    assert (as_json.needs, as_json.waves, as_json.version) == (
        as_yaml.needs, as_yaml.waves, as_yaml.version)


# -- the JSON Schema ---------------------------------------------------------------------

def schema_validator() -> Draft202012Validator:
    schema = spec_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_json_schema_is_valid_and_accepts_the_valid_spec() -> None:
    validator = schema_validator()
    assert list(validator.iter_errors(yaml.safe_load(VALID))) == []


def test_the_json_schema_rejects_a_wrong_document() -> None:
    errors = {error.message for error in schema_validator().iter_errors(
        {"flowledger": 2, "steps": "fetch", "stepz": []})}
    assert "1 was expected" in errors
    assert "'name' is a required property" in errors
    assert "'fetch' is not of type 'array'" in errors
    assert any("stepz" in message for message in errors)


# -- the examples (they land with the examples directory) --------------------------------

def test_every_example_spec_validates() -> None:
    files = sorted([*ROOT.glob("examples/specs/*.yaml"), *ROOT.glob("examples/specs/*.json")])
    assert len(files) >= 4, f"expected at least 4 example specs in examples/specs, got {files}"
    validator = schema_validator()
    for file in files:
        load_spec(file)
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
        errors = [error.message for error in validator.iter_errors(data)]
        assert errors == [], f"{file.name}: {errors}"


@pytest.mark.parametrize(("inputs", "message"), [
    ("n: {type: integer, default: x}", "inputs.n: the default 'x' is not of type integer"),
    ("n: {type: integer, default: true}", "inputs.n: the default True is not of type integer"),
    ("n: {type: string, enum: [a, b], default: c}",
     "inputs.n: the default 'c' is not one of the enum's values"),
])
def test_input_defaults_must_fit_their_type(inputs: str, message: str) -> None:
    [problem] = problems_of(one_step("id: a\nset: {x: 1}\n", f"inputs:\n  {inputs}\n"))
    assert problem.endswith(message), problem
    assert parse_spec(one_step("id: a\nset: {x: 1}\n",
                               "inputs:\n  n: {type: integer, default: null}\n"))


def test_shell_arguments_may_be_numbers_but_not_bare_booleans() -> None:
    parsed = parse_spec(one_step("id: a\nshell: [sleep, 1, 0.5]\n"))
    assert parsed.model.steps[0].shell == ["sleep", "1", "0.5"]
    [problem] = problems_of(one_step("id: a\nshell: [echo, yes]\n"))
    assert "shell: true is a boolean in YAML: quote the argument" in problem


def test_a_json_file_is_read_as_json_not_yaml() -> None:
    text = '{"flowledger": 1, "name": "t", "steps": [{"id": "a", "shell": ["echo"]},]}'
    [problem] = problems_of(text, "flow.json")
    assert problem.startswith("flow.json:1:") and "not valid JSON" in problem
    assert parse_spec(text, "flow.yaml")  # YAML's flow style allows the trailing comma
