"""A traced run SIGKILLed mid-step and resumed by another process: one trace, the spans
of completed steps and of each retried attempt exactly once, and ``export_traces`` fills
in what died with the process under the same ids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers.otlp_receiver import ReceivedSpan, Receiver
from tests.helpers.procs import CHILD_PATH, ROOT


def _child(receiver: Receiver, *args: str, block_at: str = "") -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=CHILD_PATH, BLOCK_AT=block_at,
               OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
               OTEL_SERVICE_NAME="crash-test", OTEL_BSP_SCHEDULE_DELAY="20")
    env.pop("OTEL_SDK_DISABLED", None)
    env.pop("OTEL_TRACES_EXPORTER", None)
    return subprocess.Popen([sys.executable, "-m", "tests.helpers.traced", *args], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _expect(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    stderr = proc.stderr.read() if proc.stderr is not None else ""
    raise AssertionError(f"child ended without {prefix!r}: {seen} {stderr}")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as started:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", started.endpoint)
        yield started


def _attempts(spans: list[ReceivedSpan], name: str) -> Counter[int]:
    return Counter(int(s.attributes["flowledger.step.attempt"]) for s in spans if s.name == name)


def test_sigkilled_run_resumed_is_one_trace_with_each_span_once(
        db_url: str, receiver: Receiver) -> None:
    first = _child(receiver, "start", db_url, block_at="attempt3")
    try:
        run_id = _expect(first, "run ")
        _expect(first, "inflight attempt3")
        # What ended before the kill has left the process (a short batch delay).
        receiver.wait_for(lambda spans: _attempts(spans, "step flaky") == Counter({1: 1, 2: 1})
                          and _attempts(spans, "step prepare") == Counter({1: 1}))
        first.send_signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
    second = _child(receiver, "resume", db_url, run_id)
    try:
        out, err = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(30)
    assert second.returncode == 0, err
    assert "result 104" in out  # kid(flaky(prepare(1))) = (1 + 1) * 2 + 100

    live = receiver.spans()
    assert {s.trace_id for s in live} == {uuid.UUID(run_id).hex}
    assert len({s.span_id for s in live}) == len(live), "a span was sent twice"
    assert Counter(s.name for s in live) == Counter({
        "step prepare": 1, "step flaky": 3, "chat gpt-4o-mini": 3, "step traced_kid": 1,
        "run traced_kid": 1, "step leaf": 1, "run traced_crash": 1})
    # The retried attempts once each; attempt 3 died in flight with its process.
    assert _attempts(live, "step flaky") == Counter({1: 1, 2: 1, 4: 1})
    (root,) = [s for s in live if s.name == "run traced_crash"]
    assert root.parent_span_id is None
    assert root.attributes["flowledger.run.status"] == "completed"
    by_id = {s.span_id: s for s in live}
    for span in live:
        if span is not root:
            assert span.parent_span_id in by_id, f"{span.name} has no parent in the trace"

    # The export fills in the interrupted attempt (and its LLM call) under the same ids.
    receiver.clear()
    with fl.Ledger(db_url, telemetry=False) as ledger:
        ledger.export_traces([run_id], telemetry=fl.Telemetry())
    exported = receiver.spans()
    assert {s.key() for s in live} <= {s.key() for s in exported}
    extra = [s for s in exported if s.key() not in {k.key() for k in live}]
    assert sorted((s.name, s.attributes.get("flowledger.step.attempt")) for s in extra) == [
        ("chat gpt-4o-mini", None), ("step flaky", 3)]
    (interrupted,) = [s for s in extra if s.name == "step flaky"]
    assert interrupted.attributes["flowledger.step.status"] == "interrupted"
    assert interrupted.attributes["error.type"] == "flowledger.Interrupted"


def test_receiver_is_empty_without_telemetry_env(tmp_path: Path, receiver: Receiver) -> None:
    """The child above is traced only through the variables it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in env
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    done = subprocess.run([sys.executable, "-m", "tests.helpers.traced", "start", url],
                          cwd=ROOT, env=dict(env, PYTHONPATH=CHILD_PATH), text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert receiver.spans() == [] and receiver.requests == 0
