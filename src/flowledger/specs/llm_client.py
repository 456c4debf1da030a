"""One synchronous LLM call through the official SDK, answered in a provider-neutral shape.

    from flowledger.specs.llm_client import call_llm

    reply = call_llm("openai", "gpt-4o-mini",
                     [{"role": "system", "content": "Answer with one word."},
                      {"role": "user", "content": "Triage: the app crashes on start"}],
                     params={"temperature": 0})
    reply.text, reply.input_tokens, reply.output_tokens, reply.to_dict()

``provider`` is ``"openai"`` (Chat Completions; any OpenAI-compatible server such as vLLM
or Ollama through ``base_url``, e.g. ``http://localhost:11434/v1``) or ``"anthropic"``
(Messages; ``base_url`` is the server root, without ``/v1``). The SDKs are imported only
when called: ``pip install 'flowledger[llm]'``. Failures raise :class:`LlmError`, whose
``status`` and ``retry_after`` let the caller decide whether to retry; the SDK's own
retries are off unless ``max_retries`` says otherwise. :func:`request_key` hashes a
request canonically, for use as a cache key.
"""

from __future__ import annotations

import email.utils
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, cast

PROVIDERS = ("openai", "anthropic")
_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_PLACEHOLDER_KEY = "unused"  # local OpenAI/Anthropic-compatible servers check no key
_MAX_DETAIL = 500


@dataclass(frozen=True)
class LlmReply:
    """The text of one LLM reply and the tokens it used, the same for every provider."""

    text: str
    model: str
    provider: str
    finish_reason: str | None
    input_tokens: int  # the whole prompt, cached tokens included
    output_tokens: int  # reasoning tokens included
    cached_input_tokens: int
    reasoning_tokens: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: text, model, provider, finish_reason and ``usage``."""
        data = asdict(self)
        usage = {name: data.pop(name) for name in
                 ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")}
        return {**data, "usage": usage}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LlmReply:
        """The reply :meth:`to_dict` described (e.g. read back from a cache)."""
        usage = data.get("usage") or {}
        return cls(text=data["text"], model=data["model"], provider=data["provider"],
                   finish_reason=data.get("finish_reason"),
                   input_tokens=int(usage.get("input_tokens", 0)),
                   output_tokens=int(usage.get("output_tokens", 0)),
                   cached_input_tokens=int(usage.get("cached_input_tokens", 0)),
                   reasoning_tokens=int(usage.get("reasoning_tokens", 0)))


class LlmError(Exception):
    """An LLM call failed. The message is one readable line (provider, model, HTTP status,
    the server's message; never the API key). ``status`` is the HTTP status (None when no
    response came back: connection failure, timeout, missing key) and ``retry_after`` the
    seconds the server asked to wait (its Retry-After header), when it said."""

    def __init__(self, message: str, *, provider: str = "", model: str = "",
                 status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after


def call_llm(provider: str, model: str, messages: Sequence[Mapping[str, Any]], *,
             params: Mapping[str, Any] | None = None, base_url: str | None = None,
             api_key_env: str | None = None, timeout: float | None = None,
             max_retries: int = 0) -> LlmReply:
    """Send one (non-streaming) request and return its normalised reply.

    ``params`` go to the SDK's create call as keyword arguments (``temperature``,
    ``max_tokens``, ``extra_headers``...). The API key is read from the environment
    variable ``api_key_env`` (default ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``); when it
    is unset a placeholder is sent if ``base_url`` is given, else LlmError. ``timeout``
    is in seconds (None: the SDK's default, 10 minutes).
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown llm provider {provider!r}: expected one of "
                         + ", ".join(repr(p) for p in PROVIDERS))
    options = dict(params or {})
    if options.pop("stream", False):
        raise ValueError("call_llm does not stream: remove 'stream' from params")
    env = api_key_env or _KEY_ENV[provider]
    key = os.environ.get(env) or ""
    if not key and base_url is None:
        raise LlmError(f"{provider} {model!r}: no API key: set the {env} environment variable "
                       "(or give base_url for a local server that needs none)",
                       provider=provider, model=model)
    client_args: dict[str, Any] = {"api_key": key or _PLACEHOLDER_KEY, "max_retries": max_retries}
    if base_url is not None:
        client_args["base_url"] = base_url
    if timeout is not None:  # an explicit None would mean "no timeout at all" to the SDKs
        client_args["timeout"] = timeout
    if provider == "openai":
        return _call_openai(model, messages, options, client_args, secret=key)
    return _call_anthropic(model, messages, options, client_args, secret=key)


def _call_openai(model: str, messages: Sequence[Mapping[str, Any]], options: dict[str, Any],
                 client_args: dict[str, Any], *, secret: str) -> LlmReply:
    try:
        import openai  # noqa: PLC0415 (an optional dependency, imported when used)
    except ImportError as exc:
        raise _missing_sdk("openai") from exc
    try:
        with openai.OpenAI(**client_args) as client:
            completion = client.chat.completions.create(
                model=model, messages=cast(Any, [_plain(m) for m in messages]), **options)
    except openai.OpenAIError as exc:
        raise _sdk_error(exc, openai, "openai", model, secret) from exc
    choice = completion.choices[0] if completion.choices else None
    usage = completion.usage
    prompt_details = usage.prompt_tokens_details if usage else None
    completion_details = usage.completion_tokens_details if usage else None
    return LlmReply(
        text=(choice.message.content if choice else None) or "",
        model=completion.model or model, provider="openai",
        finish_reason=choice.finish_reason if choice else None,
        input_tokens=(usage.prompt_tokens if usage else 0) or 0,
        output_tokens=(usage.completion_tokens if usage else 0) or 0,
        cached_input_tokens=(prompt_details.cached_tokens if prompt_details else 0) or 0,
        reasoning_tokens=(completion_details.reasoning_tokens if completion_details else 0) or 0)


def _call_anthropic(model: str, messages: Sequence[Mapping[str, Any]], options: dict[str, Any],
                    client_args: dict[str, Any], *, secret: str) -> LlmReply:
    try:
        import anthropic  # noqa: PLC0415 (an optional dependency, imported when used)
    except ImportError as exc:
        raise _missing_sdk("anthropic") from exc
    max_tokens = int(options.pop("max_tokens", 1024))
    system, chat = _lift_system(messages, options.pop("system", None))
    if system is not None:
        options["system"] = system
    try:
        with anthropic.Anthropic(**client_args) as client:
            message = client.messages.create(
                model=model, messages=cast(Any, chat), max_tokens=max_tokens, **options)
    except anthropic.AnthropicError as exc:
        raise _sdk_error(exc, anthropic, "anthropic", model, secret) from exc
    usage = message.usage
    read = usage.cache_read_input_tokens or 0
    details = usage.output_tokens_details
    return LlmReply(
        text="".join(block.text for block in message.content if block.type == "text"),
        model=str(message.model or model), provider="anthropic",
        finish_reason=message.stop_reason,
        input_tokens=(usage.input_tokens or 0) + read + (usage.cache_creation_input_tokens or 0),
        output_tokens=usage.output_tokens or 0, cached_input_tokens=read,
        reasoning_tokens=(details.thinking_tokens if details else 0) or 0)


def _lift_system(messages: Sequence[Mapping[str, Any]], given: Any
                 ) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """Anthropic has no system role: the system messages (after ``params["system"]``)
    become the ``system`` argument, a string when they are all plain text."""
    blocks: list[dict[str, Any]] = []
    chat: list[dict[str, Any]] = []
    for content in [given] if given is not None else []:
        blocks.extend(_text_blocks(content))
    for message in messages:
        if message.get("role") == "system":
            blocks.extend(_text_blocks(message.get("content")))
        else:
            chat.append(_plain(message))
    if not blocks:
        return None, chat
    if all(set(block) == {"type", "text"} and block["type"] == "text" for block in blocks):
        return "\n\n".join(block["text"] for block in blocks), chat
    return blocks, chat


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_plain(block) for block in content or []]


def _sdk_error(exc: Exception, sdk: ModuleType, provider: str, model: str,
               secret: str) -> LlmError:
    """A readable LlmError for one of the SDK's exceptions."""
    status: int | None = None
    retry_after: float | None = None
    if isinstance(exc, sdk.APIStatusError):
        status = exc.status_code
        retry_after = _retry_after(exc.response.headers)
        detail = f"HTTP {status}: {_server_message(exc.body) or exc.message}"
        if retry_after is not None:
            detail += f" (retry after {retry_after:g}s)"
    elif isinstance(exc, sdk.APITimeoutError):
        detail = f"request to {exc.request.url} timed out"
    elif isinstance(exc, sdk.APIConnectionError):
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        detail = f"cannot reach {exc.request.url}{cause}"
    else:
        detail = str(exc)
    detail = " ".join(detail.split())
    if secret:
        detail = detail.replace(secret, "***")
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL - 3] + "..."
    return LlmError(f"{provider} {model!r}: {detail}", provider=provider, model=model,
                    status=status, retry_after=retry_after)


def _server_message(body: object) -> str | None:
    """The error message in an error body: OpenAI's and Anthropic's ``{"error":
    {"message": ...}}``, Ollama's ``{"error": "..."}``, or plain text."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, str) and inner.strip():
            return inner
        for candidate in (inner, body):
            if isinstance(candidate, Mapping):
                message = candidate.get("message") or candidate.get("detail")
                if isinstance(message, str) and message.strip():
                    return message
        return None
    return body if isinstance(body, str) and body.strip() else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or a date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _plain(value: Any) -> Any:
    """Mappings as dicts and tuples as lists, recursively (for JSON and the SDKs)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _missing_sdk(provider: str) -> ImportError:
    return ImportError(f"llm steps with provider {provider!r} need the {provider} package: "
                       "pip install 'flowledger[llm]'")
