"""LLM token usage and USD cost, recorded on the step that spent them.

Prices come from the ``genai-prices`` library (offline, bundled data); its version is
stored with every record. An unknown model records its tokens with cost None and a
logged warning, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version
from typing import Any

import genai_prices

from . import ids, validation
from .errors import ConfigurationError, LeaseLost
from .models import Usage
from .runcontext import current_call
from .store import UsageRow

log = logging.getLogger("flowledger")


@cache
def prices_version() -> str:
    return f"genai-prices {version('genai-prices')}"


def price(model: str, provider: str | None, input_tokens: int, output_tokens: int,
          cached_input_tokens: int) -> float | None:
    """USD cost of one call, or None when the model (for that provider) is unknown.

    ``input_tokens`` counts all prompt tokens, the cached ones included (they are
    charged at the cache-read rate).
    """
    try:
        calculation = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                               cache_read_tokens=cached_input_tokens or None),
            model, provider_id=provider)
    except LookupError as exc:
        log.warning("no price known for model %r%s (%s); tokens recorded, cost left empty",
                    model, f" of provider {provider!r}" if provider else "", exc)
        return None
    return float(calculation.total_price)


def _count(name: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def record_usage(model: str, *, input_tokens: int = 0, output_tokens: int = 0,
                 cached_input_tokens: int = 0, reasoning_tokens: int = 0,
                 provider: str | None = None, cache_hit: bool = False) -> Usage:
    """Record one LLM call on the current step; callable several times per step.

    The record is written at once, so tokens spent by an attempt that later fails are
    counted too. ``input_tokens`` includes cached prompt tokens; ``reasoning_tokens``
    are part of ``output_tokens`` (as providers bill them). ``cache_hit`` records an
    answer served from a response cache (``fl.llm_cache``): its cost is zero.

    Example::

        @fl.step()
        def summarize(text: str) -> str:
            reply = client.chat.completions.create(model="gpt-4o", messages=[...])
            fl.record_usage("gpt-4o", input_tokens=reply.usage.prompt_tokens,
                            output_tokens=reply.usage.completion_tokens, provider="openai")
            return reply.choices[0].message.content
    """
    step = current_call("record_usage()")
    execution = step.execution
    validation.name(model, "model")
    counts = {name: _count(name, value) for name, value in (
        ("input_tokens", input_tokens), ("output_tokens", output_tokens),
        ("cached_input_tokens", cached_input_tokens), ("reasoning_tokens", reasoning_tokens))}
    if counts["cached_input_tokens"] > counts["input_tokens"]:
        raise ConfigurationError("cached_input_tokens counts part of input_tokens, so it "
                                 "cannot exceed it")
    if counts["reasoning_tokens"] > counts["output_tokens"]:
        raise ConfigurationError("reasoning_tokens counts part of output_tokens, so it "
                                 "cannot exceed it")
    cost = 0.0 if cache_hit else price(model, provider, counts["input_tokens"],
                                       counts["output_tokens"], counts["cached_input_tokens"])
    row = UsageRow(execution.run_id, step.position, model, provider, counts["input_tokens"],
                   counts["output_tokens"], counts["cached_input_tokens"],
                   counts["reasoning_tokens"], cost, prices_version(), ids.now_us(),
                   cache_hit)
    if not execution.runtime.store.record_usage(execution.token, row):
        raise LeaseLost(f"run {execution.run_id_text} is no longer held by this execution")
    if execution.runtime.telemetry is not None:  # its span goes out with the attempt's
        execution.runtime.telemetry.usage_recorded(step, row)
    return Usage(model, provider, row.input_tokens, row.output_tokens, row.cached_input_tokens,
                 row.reasoning_tokens, cost, row.prices_version,
                 datetime.fromtimestamp(row.recorded_at / 1e6, UTC), cache_hit)


def _get(source: Any, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def record_openai_usage(response: Any, *, provider: str = "openai") -> Usage:
    """Record the usage of an OpenAI-style response (Chat Completions or Responses API).

    Duck-typed: reads ``response.model`` and ``response.usage`` (objects or dicts); no SDK
    is imported. Example: ``fl.record_openai_usage(client.chat.completions.create(...))``
    """
    usage = _get(response, "usage")
    if usage is None:
        raise ConfigurationError("the response has no usage to record")
    prompt = _get(usage, "prompt_tokens")
    if prompt is None:
        prompt = _get(usage, "input_tokens")
    completion = _get(usage, "completion_tokens")
    if completion is None:
        completion = _get(usage, "output_tokens")
    prompt_details = _get(usage, "prompt_tokens_details") or _get(usage, "input_tokens_details")
    output_details = (_get(usage, "completion_tokens_details")
                      or _get(usage, "output_tokens_details"))
    return record_usage(
        str(_get(response, "model") or "unknown"), provider=provider,
        input_tokens=prompt or 0, output_tokens=completion or 0,
        cached_input_tokens=(_get(prompt_details, "cached_tokens") or 0)
        if prompt_details is not None else 0,
        reasoning_tokens=(_get(output_details, "reasoning_tokens") or 0)
        if output_details is not None else 0)


def record_anthropic_usage(response: Any, *, provider: str = "anthropic") -> Usage:
    """Record the usage of an Anthropic-style Messages response (duck-typed, no SDK).

    Anthropic reports cache reads and cache writes apart from ``input_tokens``; they
    are added in, since flowledger's ``input_tokens`` counts the whole prompt.
    """
    usage = _get(response, "usage")
    if usage is None:
        raise ConfigurationError("the response has no usage to record")
    cache_read = _get(usage, "cache_read_input_tokens") or 0
    cache_write = _get(usage, "cache_creation_input_tokens") or 0
    return record_usage(
        str(_get(response, "model") or "unknown"), provider=provider,
        input_tokens=(_get(usage, "input_tokens") or 0) + cache_read + cache_write,
        output_tokens=_get(usage, "output_tokens") or 0, cached_input_tokens=cache_read)
