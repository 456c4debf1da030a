"""Spec workflows on both backends: each step kind against a real peer, the DAG and
fan-outs, conditions, context, child workflows, resume and fork from the recorded text."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import genai_prices
import pytest

import flowledger as fl
from tests.contract.test_queueing import running_worker
from tests.helpers import spec_steps
from tests.helpers.peers import EXAMPLES, Peer, flaky_http, llm_replay, mcp_tracker

STEPS = "tests.helpers.spec_steps"


def spec(text: str) -> fl.Spec:
    return fl.parse_spec(textwrap.dedent(text), "test.yaml")


@pytest.fixture(scope="module")
def http_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    with flaky_http(tmp_path_factory.mktemp("http")) as peer:
        yield peer


@pytest.fixture(scope="module")
def llm_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    answers = {"default": "no idea", "rules": [{"match": "crash", "answer": "bug"},
                                               {"match": "summarise", "answer": "It crashes."}]}
    with llm_replay(tmp_path_factory.mktemp("llm"), answers) as peer:
        yield peer


@pytest.fixture(autouse=True)
def _reset_steps() -> None:
    spec_steps.calls.clear()
    spec_steps.barrier.reset()
    spec_steps.running.update(now=0, most=0)


def test_python_shell_set_for_each_and_output(ledger: fl.Ledger) -> None:
    flow = spec(f"""
        flowledger: 1
        name: basics
        inputs:
          n: {{type: integer}}
          who: {{type: string, default: world}}
        steps:
          - id: greet
            shell: [echo, "hello {{{{ inputs.who }}}}"]
          - id: double
            python: {STEPS}:double
            with: {{x: "{{{{ inputs.n }}}}"}}
          - id: fan
            for_each: "{{{{ range(steps.double.output) | list }}}}"
            python: {STEPS}:double
            with: {{x: "{{{{ item * 10 + index }}}}"}}
          - id: remember
            needs: [greet]
            set: {{greeting: "{{{{ steps.greet.output.stdout | trim }}}}"}}
        output:
          greeting: "{{{{ context.greeting }}}}"
          fan: "{{{{ steps.fan.output }}}}"
          count: "{{{{ steps.fan.output | length }}}}"
        """)
    assert flow.waves == ((0,), (1, 3), (2,))
    output = ledger.run(flow, n=2)
    assert output == {"greeting": "hello world", "fan": [0, 22, 44, 66], "count": 4}
    run = ledger.get(ledger.runs(workflow="basics").runs[0].id)
    assert run.entrypoint == f"spec:{flow.digest}" and run.version == flow.version
    assert [(s.position, s.name) for s in run.steps] == [
        (1, "greet"), (2, "double"), (3, "remember"), (4, "fan[0]"), (5, "fan[1]"),
        (6, "fan[2]"), (7, "fan[3]")]
    assert run.steps[0].input == {"argv": ["echo", "hello world"]}
    assert run.steps[3].input == {"function": f"{STEPS}:double", "with": {"x": 0}}
    assert run.context == {"greeting": "hello world"}


def test_inputs_are_checked_before_anything_is_recorded(ledger: fl.Ledger) -> None:
    flow = spec("""
        flowledger: 1
        name: typed
        inputs: {n: {type: integer}, mode: {type: string, enum: [fast, slow], default: fast}}
        steps: [{id: only, set: {n: "{{ inputs.n }}"}}]
        """)
    with pytest.raises(fl.ConfigurationError, match="n"):
        ledger.run(flow)
    with pytest.raises(fl.ConfigurationError, match="n"):
        ledger.run(flow, n="three")
    with pytest.raises(fl.ConfigurationError, match="mode"):
        ledger.run(flow, n=1, mode="medium")
    assert ledger.runs().runs == ()
    assert ledger.run(flow, inputs={"n": "7"}) == {"n": 7}  # converted like CLI input


def test_shell_exit_code_and_stderr_tail_fail_the_step(ledger: fl.Ledger) -> None:
    flow = spec("""
        flowledger: 1
        name: failing-shell
        steps:
          - id: boom
            retries: 1
            backoff: 0
            shell:
              - python3
              - -c
              - "import sys; print('out'); sys.stderr.write('disk on fire'); sys.exit(3)"
        """)
    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(flow)
    step = ledger.get(failed.value.run_id).steps[0]
    assert step.status is fl.StepStatus.FAILED and step.attempts == 2
    assert step.error is not None
    assert "exited with code 3: disk on fire" in step.error.message


def test_shell_timeout_kills_the_command(ledger: fl.Ledger, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    flow = spec(f"""
        flowledger: 1
        name: slow-shell
        steps:
          - id: sleepy
            timeout: 0.5s
            shell:
              - python3
              - -c
              - "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid()));
                 time.sleep(60)"
              - {pid_file}
        """)
    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(flow)
    step = ledger.get(failed.value.run_id).steps[0]
    assert step.error is not None and "timeout of 0.5s" in step.error.message
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while True:  # the kill is asynchronous: wait (bounded) for the process to be gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the timed-out command is still running"
        time.sleep(0.02)


def test_http_retries_5xx_and_honours_retry_after(ledger: fl.Ledger, http_peer: Peer) -> None:
    flow = spec(f"""
        flowledger: 1
        name: http-steps
        defaults: {{backoff: 0.01, retries: 3}}
        steps:
          - id: issue
            http: {{url: "{http_peer.url}/issues/7"}}
          - id: flaky
            http: {{url: "{http_peer.url}/flaky/{{{{ run.id }}}}?fail=2"}}
          - id: limited
            http: {{url: "{http_peer.url}/limited/{{{{ run.id }}}}"}}
        output: {{title: "{{{{ steps.issue.output.json.title }}}}",
                  tries: "{{{{ steps.flaky.output.json.tries }}}}"}}
        """)
    assert ledger.run(flow) == {"title": "crash on start #7", "tries": 3}
    run = ledger.get(ledger.runs(workflow="http-steps").runs[0].id)
    flaky, limited = run.steps[1], run.steps[2]
    assert flaky.attempts == 3
    assert [a.outcome.value for a in flaky.attempt_history] == ["failed", "failed", "completed"]
    assert "503" in (flaky.attempt_history[0].error.message if flaky.attempt_history[0].error
                     else "")
    first, second = limited.attempt_history
    assert first.error is not None and "429" in first.error.message
    assert first.completed_at is not None and second.started_at is not None
    # The backoff is 10 ms; the server asked for a second.
    assert (second.started_at - first.completed_at).total_seconds() >= 0.95
    keys = {r["idempotency_key"] for r in http_peer.requests() if "flaky" in str(r["path"])
            and run.id in str(r["path"])}
    assert keys == {f"{run.id}:2"}  # every attempt carried the step's stable key


def test_http_client_errors_are_not_retried(ledger: fl.Ledger, http_peer: Peer) -> None:
    flow = spec(f"""
        flowledger: 1
        name: http-404
        defaults: {{retries: 3, backoff: 0}}
        steps: [{{id: missing, http: {{url: "{http_peer.url}/issues/404"}}}}]
        """)
    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(flow)
    step = ledger.get(failed.value.run_id).steps[0]
    assert step.attempts == 1 and step.error is not None
    assert step.error.message == (f"GET {http_peer.url}/issues/404 answered 404: "
                                  '{"detail":"no issue 404"}')


def test_declared_secrets_reach_the_peer_but_not_the_record(
        ledger: fl.Ledger, http_peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FL_TEST_TOKEN", "s3cr3t-token-value")
    flow = spec(f"""
        flowledger: 1
        name: secret-header
        env: [FL_TEST_TOKEN]
        steps:
          - id: post
            http:
              method: POST
              url: "{http_peer.url}/echo"
              headers: {{Authorization: "Bearer {{{{ env.FL_TEST_TOKEN }}}}"}}
              json: {{hello: world}}
        output: "{{{{ steps.post.output.json.body }}}}"
        """)
    assert ledger.run(flow) == {"hello": "world"}
    assert http_peer.requests()[-1]["authorization"] == "Bearer s3cr3t-token-value"
    step = ledger.get(ledger.runs(workflow="secret-header").runs[0].id).steps[0]
    assert step.input["headers"] == {"Authorization": "Bearer [env.FL_TEST_TOKEN]"}


def test_llm_steps_record_tokens_and_cost_through_both_sdks(
        ledger: fl.Ledger, llm_peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sentinel-key-0042")
    flow = spec(f"""
        flowledger: 1
        name: llm-steps
        steps:
          - id: classify
            llm:
              model: gpt-4o-mini
              base_url: {llm_peer.url}/v1
              messages:
                - {{role: system, content: Answer bug or feature.}}
                - {{role: user, content: "Title: crash on start"}}
          - id: summary
            llm:
              provider: anthropic
              model: claude-3-5-haiku-latest
              base_url: {llm_peer.url}
              max_tokens: 50
              messages:
                - {{role: system, content: Be brief.}}
                - {{role: user, content: "Please summarise: {{{{ steps.classify.output.text }}}}"}}
        output: ["{{{{ steps.classify.output.text }}}}", "{{{{ steps.summary.output.text }}}}"]
        """)
    assert ledger.run(flow) == ["bug", "It crashes."]
    run = ledger.get(ledger.runs(workflow="llm-steps").runs[0].id)
    (openai_call,), (anthropic_call,) = run.steps[0].usage, run.steps[1].usage
    # The replay server's documented counts: words * 4 // 3 + 3 in, words * 4 // 3 + 1 out.
    prompt = "Answer bug or feature. Title: crash on start"
    assert (openai_call.input_tokens, openai_call.output_tokens) == (
        len(prompt.split()) * 4 // 3 + 3, 1 * 4 // 3 + 1)
    prompt = "Be brief. Please summarise: bug"
    assert (anthropic_call.input_tokens, anthropic_call.output_tokens) == (
        len(prompt.split()) * 4 // 3 + 3, 2 * 4 // 3 + 1)
    for call, provider in ((openai_call, "openai"), (anthropic_call, "anthropic")):
        expected = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=call.input_tokens,
                               output_tokens=call.output_tokens),
            call.model, provider_id=provider).total_price
        assert call.cost_usd == pytest.approx(float(expected))
        assert call.provider == provider and not call.cache_hit
    assert run.usage is not None and run.usage.cost_usd == pytest.approx(
        (openai_call.cost_usd or 0) + (anthropic_call.cost_usd or 0))
    assert "sk-sentinel-key-0042" not in repr(run.to_dict())  # keys are never recorded


def test_a_missing_api_key_fails_the_llm_step_without_retrying(
        ledger: fl.Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    flow = spec("""
        flowledger: 1
        name: no-key
        defaults: {retries: 3, backoff: 0}
        steps:
          - id: ask
            llm: {provider: anthropic, model: claude-3-5-haiku-latest,
                  messages: [{role: user, content: hi}]}
        """)
    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(flow)
    step = ledger.get(failed.value.run_id).steps[0]
    assert step.attempts == 1 and step.error is not None
    assert "ANTHROPIC_API_KEY is not set" in step.error.message


def test_llm_cache_serves_identical_requests_at_zero_cost(
        ledger: fl.Ledger, llm_peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    flow = spec(f"""
        flowledger: 1
        name: cached
        inputs: {{temperature: {{type: number, default: 0}}}}
        steps:
          - id: ask
            llm:
              model: gpt-4o-mini
              base_url: {llm_peer.url}/v1
              temperature: "{{{{ inputs.temperature }}}}"
              cache: true
              messages: [{{role: user, content: "crash when saving {{{{ run.workflow }}}}"}}]
        """)
    before = len(llm_peer.requests())
    first = ledger.run(flow)
    second = ledger.run(flow)
    assert len(llm_peer.requests()) == before + 1  # the second answer came from the cache
    assert first["text"] == second["text"] == "bug"
    assert (first["cached"], second["cached"]) == (False, True)
    runs = ledger.runs(workflow="cached").runs
    hit = ledger.get(runs[0].id).steps[0].usage[0]
    assert hit.cache_hit and hit.cost_usd == 0.0 and hit.input_tokens == 0
    ledger.run(flow, temperature=0.5)  # another parameter: another request
    assert len(llm_peer.requests()) == before + 2
    other = ledger.for_owner("someone-else").run(flow)  # the cache is per owner
    assert other["cached"] is False and len(llm_peer.requests()) == before + 3


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_mcp_tool_calls(ledger: fl.Ledger, tmp_path: Path, transport: str) -> None:
    def run_with(server: str) -> tuple[object, fl.Run]:
        flow = spec(f"""
            flowledger: 1
            name: mcp-{transport}
            inputs: {{issue: {{type: integer}}}}
            mcp_servers:
              tracker: {server}
            steps:
              - id: fetch
                mcp:
                  server: tracker
                  tool: get_issue
                  arguments: {{issue: "{{{{ inputs.issue }}}}"}}
              - id: remember
                set: {{title: "{{{{ steps.fetch.output.structured.title }}}}"}}
              - id: label
                mcp:
                  server: tracker
                  tool: add_label
                  arguments: {{issue: "{{{{ inputs.issue }}}}", label: triaged}}
              - id: pid
                mcp: {{server: tracker, tool: server_info}}
            output:
              title: "{{{{ context.title }}}}"
              pid: "{{{{ steps.pid.output.structured.pid }}}}"
              labels: "{{{{ steps.label.output.structured.labels }}}}"
            """)
        output = ledger.run(flow, issue=1)
        return output, ledger.get(ledger.runs(workflow=f"mcp-{transport}").runs[0].id)

    if transport == "stdio":
        command = [sys.executable, str(EXAMPLES / "mcp_tracker_server.py")]
        server = f"{{command: {command}, env: {{TRACKER_DB: '{tmp_path / 'db.json'}'}}}}"
        output, run = run_with(server)
        pid = int(output["pid"])  # type: ignore[index]
        with pytest.raises(ProcessLookupError):  # the run closed its server at its end
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
    else:
        with mcp_tracker(tmp_path) as peer:
            output, run = run_with(f"{{url: '{peer.url}'}}")
            assert [c["tool"] for c in peer.requests()] == ["get_issue", "add_label",
                                                            "server_info"]
    assert output["title"]  # type: ignore[index]
    assert "triaged" in output["labels"]  # type: ignore[index]
    assert run.context["title"] == output["title"]  # type: ignore[index]


def test_an_mcp_tool_error_fails_the_step(ledger: fl.Ledger, tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLES / "mcp_tracker_server.py")]
    flow = spec(f"""
        flowledger: 1
        name: mcp-error
        mcp_servers:
          tracker: {{command: {command}, env: {{TRACKER_DB: '{tmp_path / 'db.json'}'}}}}
        steps: [{{id: fetch, mcp: {{server: tracker, tool: get_issue, arguments: {{issue: 999}}}}}}]
        """)
    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(flow)
    error = ledger.get(failed.value.run_id).steps[0].error
    assert error is not None and "get_issue" in error.message and "999" in error.message


def test_independent_branches_run_concurrently(ledger: fl.Ledger) -> None:
    flow = spec(f"""
        flowledger: 1
        name: branches
        steps:
          - {{id: left, python: "{STEPS}:together", with: {{name: left}}}}
          - {{id: right, needs: [], python: "{STEPS}:together", with: {{name: right}}}}
          - id: join
            needs: [left, right]
            set: {{both: "{{{{ [steps.left.output, steps.right.output] }}}}"}}
        output: "{{{{ context.both }}}}"
        """)
    assert ledger.run(flow) == ["left", "right"]  # each waited for the other: concurrent
    steps = ledger.get(ledger.runs(workflow="branches").runs[0].id).steps
    left, right = steps[0], steps[1]
    assert left.started_at and right.started_at and left.completed_at and right.completed_at
    assert left.started_at < right.completed_at and right.started_at < left.completed_at


def test_for_each_keeps_to_its_concurrency(ledger: fl.Ledger) -> None:
    flow = spec(f"""
        flowledger: 1
        name: fan-out
        steps:
          - id: items
            for_each: [1, 2, 3, 4, 5, 6]
            concurrency: 2
            python: {STEPS}:paired
            with: {{item: "{{{{ item }}}}"}}
        """)
    assert ledger.run(flow) == [1, 2, 3, 4, 5, 6]
    assert spec_steps.running["most"] == 2


def test_a_false_condition_records_a_skipped_step(ledger: fl.Ledger) -> None:
    flow = spec(f"""
        flowledger: 1
        name: conditional
        inputs: {{n: {{type: integer}}}}
        steps:
          - {{id: big, if: "{{{{ inputs.n > 10 }}}}", python: "{STEPS}:double", with: {{x: 1}}}}
          - {{id: after, python: "{STEPS}:double", with: {{x: "{{{{ inputs.n }}}}"}}}}
        """)
    assert ledger.run(flow, n=3) == 6
    steps = ledger.get(ledger.runs(workflow="conditional").runs[0].id).steps
    assert steps[0].status is fl.StepStatus.SKIPPED and steps[0].output is None
    assert spec_steps.calls == ["double 3"]


def test_workflow_steps_start_child_runs(ledger: fl.Ledger) -> None:
    ledger.register_spec(textwrap.dedent(f"""
        flowledger: 1
        name: child-spec
        inputs: {{x: {{type: integer}}}}
        steps: [{{id: twice, python: "{STEPS}:double", with: {{x: "{{{{ inputs.x }}}}"}}}}]
        """))
    flow = spec("""
        flowledger: 1
        name: parent-spec
        steps:
          - {id: call, workflow: child-spec, with: {x: 21}}
        """)
    assert ledger.run(flow) == 42
    parent = ledger.get(ledger.runs(workflow="parent-spec").runs[0].id)
    child = ledger.get(ledger.runs(workflow="child-spec").runs[0].id)
    assert child.parent_id == parent.id and parent.steps[0].child_run_id == child.id
    assert parent.steps[0].name == "call"  # the step id, not the child's workflow name
    missing = spec("""
        flowledger: 1
        name: orphan
        steps: [{id: call, workflow: nobody-registered-this}]
        """)
    with pytest.raises(fl.RunFailed,
                       match="step 'call': no workflow named 'nobody-registered-this'"):
        ledger.run(missing)


def test_python_steps_await_async_functions_and_start_python_children(
        ledger: fl.Ledger) -> None:
    flow = spec(f"""
        flowledger: 1
        name: mixed
        steps:
          - {{id: awaited, python: "{STEPS}:double_async", with: {{x: 4}}}}
          - id: child
            workflow: spec-child-python
            with: {{x: "{{{{ steps.awaited.output }}}}"}}
        """)
    assert ledger.run(flow) == 17
    child = ledger.get(ledger.runs(workflow="spec-child-python").runs[0].id)
    assert [s.name for s in child.steps] == ["doubled"] and child.parent_id is not None
    refused = spec("""
        flowledger: 1
        name: async-child
        steps: [{id: child, workflow: spec-child-async, with: {x: 1}}]
        """)
    with pytest.raises(fl.RunFailed, match="is async"):
        ledger.run(refused)


def test_a_scheduled_and_a_submitted_spec_run_on_a_worker(ledger: fl.Ledger,
                                                           db_url: str) -> None:
    flow = spec(f"""
        flowledger: 1
        name: scheduled-spec
        inputs: {{x: {{type: integer, default: 2}}}}
        steps: [{{id: twice, python: "{STEPS}:double", with: {{x: "{{{{ inputs.x }}}}"}}}}]
        """)
    ledger.add_schedule(flow, cron="* * * * *", owner="alice")
    (ticked,) = ledger.fire_schedules(now=datetime.now(UTC) + timedelta(minutes=2))
    submitted = ledger.submit(flow, x=5, owner="bob")
    with running_worker(db_url):
        assert ledger.result(ticked, timeout=60) == 4
        assert submitted.result(timeout=60) == 10
    assert ledger.get(ticked).owner == "alice" and ledger.get(submitted.id).owner == "bob"


def test_later_steps_see_outputs_as_recorded_so_a_resume_sees_the_same(
        ledger: fl.Ledger, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flow = spec(f"""
        flowledger: 1
        name: recorded-form
        steps:
          - {{id: when, python: "{STEPS}:today"}}
          - {{id: gate, python: "{STEPS}:fail_unless", with: {{path: "{flag}"}}}}
        output: "{{{{ steps.when.output[:4] }}}}"
        """)
    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(flow)
    flag.write_text("")
    assert ledger.resume(failed.value.run_id).result() == "2026"  # replayed: a string
    assert ledger.run(flow) == "2026"  # the first execution sees the same


def test_resume_and_fork_use_the_recorded_text(ledger: fl.Ledger, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    text = textwrap.dedent(f"""
        flowledger: 1
        name: resumable
        inputs: {{x: {{type: integer}}}}
        steps:
          - {{id: first, python: "{STEPS}:double", with: {{x: "{{{{ inputs.x }}}}"}}}}
          - {{id: gate, python: "{STEPS}:fail_unless", with: {{path: "{flag}"}}}}
          - {{id: last, python: "{STEPS}:double", with: {{x: "{{{{ steps.first.output }}}}"}}}}
        """)
    file = tmp_path / "flow.yaml"
    file.write_text(text)
    with pytest.raises(fl.RunFailed) as failed:
        ledger.run(fl.load_spec(file), x=5)
    file.write_text(text.replace("name: resumable", "name: changed")
                    .replace("steps.first.output", "0"))  # edited after the failure
    flag.write_text("")
    assert ledger.resume(failed.value.run_id).result() == 20
    assert spec_steps.calls == ["double 5", "double 10"]  # `first` ran once
    forked = ledger.fork(failed.value.run_id, 3, inputs={"x": 100}).result()
    assert forked == 20  # the fork reuses `first` (before position 3) from the source
    assert ledger.get(failed.value.run_id).workflow == "resumable"
    # Onto the edited text: the reused steps come along, the rest runs from the new file.
    edited = fl.parse_spec(text.replace("steps.first.output", "steps.first.output + 1"))
    moved = ledger.fork(failed.value.run_id, 3, workflow=edited)
    assert moved.result() == 22
    assert ledger.get(moved.id).entrypoint == f"spec:{edited.digest}"
    with pytest.raises(fl.ConfigurationError, match="cannot run 'changed'"):
        ledger.fork(failed.value.run_id, 3, workflow=fl.load_spec(file))
