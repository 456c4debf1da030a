"""A REPLAY server for offline demos and tests: it serves RECORDED answers. It is not a model.

It speaks two wire formats on 127.0.0.1, non-streaming only:

* OpenAI Chat Completions, ``POST /v1/chat/completions`` (SDK ``base_url=http://127.0.0.1:PORT/v1``)
* Anthropic Messages, ``POST /v1/messages`` (SDK ``base_url=http://127.0.0.1:PORT``)

    python examples/llm_replay_server.py --port 8931 [--answers examples/llm_answers.json]

Every response carries the header ``x-flowledger-replay: recorded``; OpenAI replies also
have ``system_fingerprint: "flowledger-replay-recorded"`` and Anthropic replies an id that
starts with ``msg_replay_``. The requested model name is echoed back; ``temperature``,
``max_tokens`` and the other sampling parameters are accepted and ignored, and no API key
is checked.

Answers file (JSON): ``{"default": "text", "rules": [{"match": ..., "answer": ...}, ...]}``
(or just the list of rules). ``match`` is a substring, or a list of substrings that must all
appear, of the LAST user message, compared case-insensitively; the first matching rule
wins, else the default answer.

Token usage is deterministic, with words = ``len(text.split())``:

* input tokens  = (words in the content of every message, system prompt included) * 4 // 3 + 3
* output tokens = (words in the answer) * 4 // 3 + 1

and no cached or reasoning tokens. The same conversation counts the same on both endpoints
(Anthropic's top-level ``system`` is counted like an OpenAI system message).

Failing on demand: the request header ``x-replay-fail: STATUS`` (e.g. 429 or 500), or a
model named ``replay-fail-STATUS``, makes that request fail with that HTTP status and an
error body in the endpoint's own format; a 429 also carries ``Retry-After: 1``. A request
asking for ``stream: true`` gets a 400 (streaming is not supported here).

When the environment variable ``LLM_REPLAY_LOG`` names a file, one JSON line is appended
to it per request: ``{"endpoint", "model", "last_user", "system", "messages", "status"}``
(``system`` is the system prompt's text, or null when there was none).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

REPLAY_HEADER = {"x-flowledger-replay": "recorded"}
FINGERPRINT = "flowledger-replay-recorded"
DEFAULT_ANSWERS = Path(__file__).resolve().with_name("llm_answers.json")
FALLBACK_ANSWER = "(the replay server has no recorded answer for this message)"
FAIL_MODEL = re.compile(r"^replay-fail-(\d{3})$")
OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                      404: "not_found_error", 429: "rate_limit_error"}
ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                         403: "permission_error", 404: "not_found_error",
                         429: "rate_limit_error", 529: "overloaded_error"}


class Answers:
    """The recorded answers: ordered rules and a default."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        rules = data if isinstance(data, list) else data.get("rules", [])
        self.default: str = FALLBACK_ANSWER if isinstance(data, list) else str(
            data.get("default", FALLBACK_ANSWER))
        self.rules: list[tuple[list[str], str]] = []
        for rule in rules:
            match = rule["match"]
            needles = [match] if isinstance(match, str) else list(match)
            self.rules.append(([n.lower() for n in needles], str(rule["answer"])))

    def answer(self, last_user: str) -> str:
        haystack = last_user.lower()
        for needles, answer in self.rules:
            if all(needle in haystack for needle in needles):
                return answer
        return self.default


def text_of(content: Any) -> str:
    """The text in a message's content: a string, or a list of parts/blocks with text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content
                        if isinstance(part, Mapping) and part.get("type", "text") == "text")
    return ""


def words(text: str) -> int:
    return len(text.split())


def usage_of(texts: list[str], answer: str) -> tuple[int, int]:
    """(input tokens, output tokens) by the documented formula."""
    return sum(words(t) for t in texts) * 4 // 3 + 3, words(answer) * 4 // 3 + 1


def log_request(endpoint: str, model: Any, last_user: str, system: str | None,
                messages: int, status: int) -> None:
    path = os.environ.get("LLM_REPLAY_LOG")
    if not path:
        return
    line = json.dumps({"endpoint": endpoint, "model": model, "last_user": last_user,
                       "system": system, "messages": messages, "status": status},
                      ensure_ascii=False)
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def requested_failure(request: Request, model: Any) -> int | None:
    """The status to fail with, from ``x-replay-fail`` or a ``replay-fail-NNN`` model."""
    header = request.headers.get("x-replay-fail", "").strip()
    if header.isdigit():
        return int(header)
    found = FAIL_MODEL.match(model) if isinstance(model, str) else None
    return int(found.group(1)) if found else None


def openai_error(status: int, message: str) -> JSONResponse:
    fallback = "server_error" if status >= 500 else "invalid_request_error"
    kind = OPENAI_ERROR_TYPES.get(status, fallback)
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return respond(body, status)


def anthropic_error(status: int, message: str) -> JSONResponse:
    fallback = "api_error" if status >= 500 else "invalid_request_error"
    kind = ANTHROPIC_ERROR_TYPES.get(status, fallback)
    body = {"type": "error", "error": {"type": kind, "message": message},
            "request_id": "req_replay_" + hashlib.sha256(message.encode()).hexdigest()[:16]}
    return respond(body, status)


def respond(body: dict[str, Any], status: int = 200) -> JSONResponse:
    headers = dict(REPLAY_HEADER)
    if status == 429:
        headers["Retry-After"] = "1"
    return JSONResponse(body, status_code=status, headers=headers)


def reply_id(prefix: str, endpoint: str, model: Any, texts: list[str]) -> str:
    digest = hashlib.sha256(json.dumps([endpoint, model, texts]).encode()).hexdigest()
    return prefix + digest[:24]


async def read_json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def create_app(answers: Answers) -> FastAPI:
    app = FastAPI(title="flowledger LLM replay server (recorded answers, not a model)",
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    def health() -> JSONResponse:
        return respond({"status": "ok", "replay": "recorded"})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        endpoint = "/v1/chat/completions"
        body = await read_json(request)
        if body is None:
            log_request(endpoint, None, "", None, 0, 400)
            return openai_error(400, "the request body must be a JSON object")
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            log_request(endpoint, model, "", None, 0, 400)
            return openai_error(400, "'model' (a string) and 'messages' (a non-empty list) "
                                     "are required")
        texts = [text_of(m.get("content")) for m in messages if isinstance(m, Mapping)]
        system = [text_of(m.get("content")) for m in messages
                  if isinstance(m, Mapping) and m.get("role") in ("system", "developer")]
        users = [text_of(m.get("content")) for m in messages
                 if isinstance(m, Mapping) and m.get("role") == "user"]
        last_user = users[-1] if users else ""
        system_text = "\n\n".join(system) if system else None
        failure = requested_failure(request, model)
        status = failure or (400 if body.get("stream") else 200)
        log_request(endpoint, model, last_user, system_text, len(messages), status)
        if failure:
            return openai_error(failure, f"replay server: failure {failure} requested "
                                         "(x-replay-fail header or replay-fail-NNN model)")
        if body.get("stream"):
            return openai_error(400, "stream: streaming is not supported by the replay server")
        answer = answers.answer(last_user)
        input_tokens, output_tokens = usage_of(texts, answer)
        return respond({
            "id": reply_id("chatcmpl-replay-", endpoint, model, texts),
            "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer, "refusal": None}}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
        })

    @app.post("/v1/messages")
    async def messages_endpoint(request: Request) -> JSONResponse:
        endpoint = "/v1/messages"
        body = await read_json(request)
        if body is None:
            log_request(endpoint, None, "", None, 0, 400)
            return anthropic_error(400, "the request body must be a JSON object")
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            log_request(endpoint, model, "", None, 0, 400)
            return anthropic_error(400, "model: a string, and messages: a non-empty list, "
                                        "are required")
        system_text = text_of(body["system"]) if body.get("system") else None
        users = [text_of(m.get("content")) for m in messages
                 if isinstance(m, Mapping) and m.get("role") == "user"]
        last_user = users[-1] if users else ""
        roles = {m.get("role") for m in messages if isinstance(m, Mapping)}
        problem = None
        if not isinstance(body.get("max_tokens"), int):
            problem = "max_tokens: Field required"
        elif not roles <= {"user", "assistant"}:
            problem = ("messages: roles must be 'user' or 'assistant' (a system prompt goes "
                       "in the top-level 'system' parameter)")
        elif body.get("stream"):
            problem = "stream: streaming is not supported by the replay server"
        failure = requested_failure(request, model)
        status = failure or (400 if problem else 200)
        log_request(endpoint, model, last_user, system_text, len(messages), status)
        if failure:
            return anthropic_error(failure, f"replay server: failure {failure} requested "
                                            "(x-replay-fail header or replay-fail-NNN model)")
        if problem:
            return anthropic_error(400, problem)
        texts = ([system_text] if system_text else []) + [
            text_of(m.get("content")) for m in messages if isinstance(m, Mapping)]
        answer = answers.answer(last_user)
        input_tokens, output_tokens = usage_of(texts, answer)
        return respond({
            "id": reply_id("msg_replay_", endpoint, model, texts),
            "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        })

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answers", type=Path, default=DEFAULT_ANSWERS,
                        help=f"the recorded answers (default: {DEFAULT_ANSWERS})")
    args = parser.parse_args()
    app = create_app(Answers(args.answers))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
