"""call_llm through the real OpenAI and Anthropic SDKs, against the local replay server
(examples/llm_replay_server.py: recorded answers, deterministic token counts)."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import genai_prices
import pytest

from flowledger import llm_cache
from flowledger.specs.llm_client import LlmError, LlmReply, call_llm

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples" / "llm_replay_server.py"
ANSWERS = {
    "default": "no idea",
    "rules": [
        {"match": ["summarise", "crash"], "answer": "The app crashes when it starts up."},
        {"match": "crash", "answer": "bug"},
        {"match": "please add", "answer": "feature"},
    ],
}
SYSTEM = "You triage issues. Answer with one word."
MESSAGES = [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Title: crash on start. The app crashes at launch."}]


def words(text: str) -> int:
    return len(text.split())


def expected_usage(messages: list[dict[str, str]], answer: str) -> tuple[int, int]:
    """The server's documented formula."""
    total = sum(words(m["content"]) for m in messages)
    return total * 4 // 3 + 3, words(answer) * 4 // 3 + 1


@dataclass
class Replay:
    port: int
    log: Path

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    folder = tmp_path_factory.mktemp("replay")
    answers = folder / "answers.json"
    answers.write_text(json.dumps(ANSWERS))
    server = Replay(port=free_port(), log=folder / "requests.jsonl")
    output = folder / "server.out"
    with output.open("wb") as sink:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(server.port), "--answers", str(answers)],
            env={**os.environ, "LLM_REPLAY_LOG": str(server.log)},
            stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the replay server exited: {output.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the replay server did not start listening within 15 s")
                time.sleep(0.02)
        yield server
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real keys leak into a test: the replay server needs none."""
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL",
                 "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_openai_reply_text_and_usage(replay: Replay, no_keys: None) -> None:
    before = len(replay.requests())
    reply = call_llm("openai", "gpt-4o-mini", MESSAGES, base_url=replay.openai_url,
                     params={"temperature": 0, "max_tokens": 5}, timeout=10)
    inp, out = expected_usage(MESSAGES, "bug")
    assert reply == LlmReply(text="bug", model="gpt-4o-mini", provider="openai",
                             finish_reason="stop", input_tokens=inp, output_tokens=out,
                             cached_input_tokens=0, reasoning_tokens=0)
    seen = replay.requests()[before:]
    assert [(r["endpoint"], r["model"], r["system"], r["status"]) for r in seen] == [
        ("/v1/chat/completions", "gpt-4o-mini", SYSTEM, 200)]
    price = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=reply.input_tokens, output_tokens=reply.output_tokens),
        reply.model, provider_id="openai").total_price
    assert price > 0


def test_anthropic_lifts_the_system_message(replay: Replay, no_keys: None) -> None:
    before = len(replay.requests())
    messages = [*MESSAGES[:1], {"role": "user", "content": "Please summarise: crash at start."}]
    reply = call_llm("anthropic", "claude-haiku-4-5", messages, base_url=replay.anthropic_url)
    answer = "The app crashes when it starts up."
    inp, out = expected_usage(messages, answer)
    assert (reply.text, reply.model, reply.provider, reply.finish_reason) == (
        answer, "claude-haiku-4-5", "anthropic", "end_turn")
    assert (reply.input_tokens, reply.output_tokens, reply.cached_input_tokens,
            reply.reasoning_tokens) == (inp, out, 0, 0)
    seen = replay.requests()[before:]
    # the server rejects a "system" role on /v1/messages, so a 200 means it was lifted
    assert [(r["endpoint"], r["system"], r["messages"], r["status"]) for r in seen] == [
        ("/v1/messages", SYSTEM, 1, 200)]


def test_to_dict_is_json_and_round_trips(replay: Replay, no_keys: None) -> None:
    reply = call_llm("openai", "gpt-4o-mini", [{"role": "user", "content": "please add dark mode"}],
                     base_url=replay.openai_url)
    data = json.loads(json.dumps(reply.to_dict()))
    assert data["text"] == "feature"
    assert set(data["usage"]) == {"input_tokens", "output_tokens", "cached_input_tokens",
                                  "reasoning_tokens"}
    assert LlmReply.from_dict(data) == reply


def test_the_cache_key_is_canonical() -> None:
    messages = [{"role": "user", "content": "hello"}]

    def key(msgs: list[dict[str, str]], params: dict[str, int], base_url: str | None) -> str:
        return llm_cache.key({"provider": "openai", "model": "gpt-4o-mini",
                              "messages": msgs, "params": params, "base_url": base_url})

    first = key(messages, {"temperature": 0, "seed": 1}, None)
    reordered = key([{"content": "hello", "role": "user"}], {"seed": 1, "temperature": 0}, None)
    assert first == reordered
    assert len(first) == 64 and int(first, 16) >= 0
    assert first != key(messages, {"temperature": 1, "seed": 1}, None)
    assert first != key(messages, {"temperature": 0, "seed": 1}, "http://127.0.0.1:1/v1")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (429, 1.0)])
def test_http_errors_become_llm_errors(replay: Replay, no_keys: None, provider: str,
                                       status: int, retry_after: float | None) -> None:
    base_url = replay.openai_url if provider == "openai" else replay.anthropic_url
    before = len(replay.requests())
    with pytest.raises(LlmError) as caught:
        call_llm(provider, "some-model", MESSAGES, base_url=base_url,
                 params={"extra_headers": {"x-replay-fail": str(status)}})
    error = caught.value
    assert (error.status, error.retry_after, error.provider, error.model) == (
        status, retry_after, provider, "some-model")
    message = str(error)
    assert provider in message and "some-model" in message and f"HTTP {status}" in message
    assert "failure" in message and "requested" in message  # the server's own message
    assert "\n" not in message
    assert len(replay.requests()) == before + 1  # max_retries=0: the SDK did not retry
    restored = pickle.loads(pickle.dumps(error))
    assert (str(restored), restored.status, restored.retry_after) == (
        message, status, retry_after)


def test_failure_by_model_name(replay: Replay, no_keys: None) -> None:
    with pytest.raises(LlmError) as caught:
        call_llm("openai", "replay-fail-503", MESSAGES, base_url=replay.openai_url)
    assert caught.value.status == 503


def test_api_key_is_never_in_the_message(replay: Replay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET_KEY", "sk-test-1234567890abcdef")
    with pytest.raises(LlmError) as caught:
        call_llm("openai", "gpt-4o-mini", MESSAGES, base_url=replay.openai_url,
                 api_key_env="MY_SECRET_KEY",
                 params={"extra_headers": {"x-replay-fail": "401"}})
    assert caught.value.status == 401
    assert "sk-test-1234567890abcdef" not in str(caught.value)


def test_connection_failure(no_keys: None) -> None:
    with pytest.raises(LlmError) as caught:
        call_llm("openai", "gpt-4o-mini", MESSAGES, base_url=f"http://127.0.0.1:{free_port()}/v1",
                 timeout=5)
    assert caught.value.status is None and caught.value.retry_after is None
    assert "cannot reach" in str(caught.value)


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LlmError, match="OPENAI_API_KEY") as caught:
        call_llm("openai", "gpt-4o-mini", MESSAGES)
    assert caught.value.status is None
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LlmError, match="ANTHROPIC_API_KEY"):
        call_llm("anthropic", "claude-haiku-4-5", MESSAGES)


def test_unknown_provider() -> None:
    with pytest.raises(ValueError, match=r"'openai', 'anthropic'"):
        call_llm("mistral", "m", MESSAGES)


def test_streaming_is_refused() -> None:
    with pytest.raises(ValueError, match="stream"):
        call_llm("openai", "m", MESSAGES, params={"stream": True}, base_url="http://x/v1")


def test_missing_sdk_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` fail
    with pytest.raises(ImportError, match=r"pip install 'flowledger\[llm\]'"):
        call_llm("openai", "m", MESSAGES, base_url="http://127.0.0.1:1/v1")
