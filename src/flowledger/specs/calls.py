"""The ``llm`` and ``mcp`` spec steps: calls through the official SDKs, with the tokens
and cost of each LLM call recorded on its step, and an optional response cache.

With ``cache: true`` an answer is kept in ``fl.llm_cache`` under the canonical hash of the
request (provider, model, messages, parameters, base URL; never the API key), per owner;
a hit returns the kept answer and is recorded on the step as a cache hit with zero cost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import llm_cache
from ..errors import NonRetryable
from ..usage import record_usage
from .kinds import StepFailed, StepRefused, attempt_timeout
from .llm_client import LlmError, call_llm

if TYPE_CHECKING:
    from .mcp_client import McpSessions

RETRYABLE_STATUS = frozenset({408, 409, 429})


def llm(request: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """One LLM call (or a cache hit when ``cache`` is on)."""
    cached_as = {name: request[name] for name in ("provider", "model", "messages", "params",
                                                  "base_url")}
    if request["cache"]:
        hit = llm_cache.get(cached_as)
        if hit is not None:
            return {**hit, "cached": True}
    key = request["api_key_env"] or f"{request['provider'].upper()}_API_KEY"
    if not request["base_url"] and not os.environ.get(key):  # no attempt can fix that
        raise StepRefused(f"llm step: {key} is not set (set it, or give base_url: for a "
                          "local server that needs no key)")
    try:
        reply = call_llm(request["provider"], request["model"], request["messages"],
                         params=request["params"], base_url=request["base_url"],
                         api_key_env=request["api_key_env"],
                         timeout=attempt_timeout(timeout))
    except LlmError as exc:
        status = exc.status
        if status is None or status >= 500 or status in RETRYABLE_STATUS:
            raise StepFailed(str(exc), exc.retry_after) from None
        raise StepRefused(str(exc)) from None
    except (ValueError, ImportError) as exc:
        raise StepRefused(str(exc)) from None
    record_usage(reply.model, provider=reply.provider, input_tokens=reply.input_tokens,
                 output_tokens=reply.output_tokens,
                 cached_input_tokens=reply.cached_input_tokens,
                 reasoning_tokens=reply.reasoning_tokens)
    answer = reply.to_dict()
    if request["cache"]:
        llm_cache.put(cached_as, answer)
    return {**answer, "cached": False}


def mcp(sessions: McpSessions, request: Mapping[str, Any],
        timeout: float | None = None) -> dict[str, Any]:
    """One MCP tool call on a server of the run (started at its first call)."""
    from .mcp_client import McpToolError  # noqa: PLC0415 (the SDK loads slowly)

    try:
        return sessions.call_tool(request["server"], request["tool"], request["arguments"],
                                  timeout=attempt_timeout(timeout))
    except McpToolError as exc:
        raise StepFailed(str(exc)) from None
    except ValueError as exc:
        raise NonRetryable(str(exc)) from None
