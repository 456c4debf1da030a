"""A response cache for LLM calls, kept in the ledger per owner: ``fl.llm_cache``.

Requests are keyed by the SHA-256 of their canonical JSON (sorted keys), so the same
model, messages and parameters hit the same entry whatever the dict order; a changed
parameter is another request. A hit is recorded on the current step as a cached call
(no tokens, zero cost), so reports show what the cache saved. Spec ``llm`` steps with
``cache: true`` use it; Python steps call it around their own client.

Example::

    @fl.step()
    def classify(title: str) -> str:
        request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": title}]}
        cached = fl.llm_cache.get(request)
        if cached is not None:
            return cached
        reply = client.chat.completions.create(**request)
        fl.record_openai_usage(reply)
        answer = reply.choices[0].message.content
        fl.llm_cache.put(request, answer)
        return answer
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import ids
from .runcontext import current_call
from .usage import record_usage

__all__ = ["get", "key", "put"]


def key(request: Mapping[str, Any]) -> str:
    """The cache key of a request: SHA-256 of its canonical JSON."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def get(request: Mapping[str, Any]) -> Any:
    """The cached response to ``request`` (None on a miss). A hit is recorded on the
    current step as a cache hit of ``request["model"]`` with zero cost."""
    call = current_call("fl.llm_cache")
    execution = call.execution
    found = execution.runtime.store.cached_response(execution.owner, key(request))
    if found is None:
        return None
    record_usage(str(request.get("model") or "unknown"), cache_hit=True,
                 provider=request.get("provider"))
    return json.loads(found)


def put(request: Mapping[str, Any], response: Any) -> None:
    """Remember ``response`` (any JSON value) for ``request``; the first answer stays."""
    call = current_call("fl.llm_cache")
    execution = call.execution
    execution.runtime.store.cache_response(
        execution.owner, key(request), str(request.get("model") or "unknown"),
        json.dumps(response), ids.now_us())
