"""Workflows the UI tests record and run (``--app tests.helpers.ui_app``).

Gates are files, as in ``http_app``: the server executes queued runs in another process.
"""

from __future__ import annotations

import contextlib
import logging

from pydantic import BaseModel

import flowledger as fl
from tests.helpers.gate import wait_for_file


@fl.step
def load(n: int) -> dict[str, object]:
    return {"n": n, "items": list(range(n % 5 + 1)), "note": f"loaded {n}"}


_tries: dict[str, int] = {}
log = logging.getLogger("ui_app")


@fl.step(retries=2, backoff=0)
def wobbly(key: str) -> str:
    """Fails on its first attempt, then succeeds: one failed attempt in the history."""
    run = fl.current_run_id() or key
    _tries[run] = _tries.get(run, 0) + 1
    log.warning("fetching %s, attempt %d", key, _tries[run])
    if _tries[run] == 1:
        raise ConnectionError(f"upstream reset while fetching {key}")
    return f"fetched {key}"


@fl.step
def ask_model(prompt: str, tokens: int) -> str:
    fl.record_usage("gpt-4o-mini", input_tokens=tokens, output_tokens=tokens // 4,
                    provider="openai")
    fl.context.set("last_prompt", prompt)
    return f"answer to {prompt}"


@fl.step
def save_report(text: str) -> str:
    fl.artifacts.save("report.md", f"# Report\n\n{text}\n", media_type="text/markdown")
    return text.upper()


@fl.workflow(name="ui_pipeline")
def pipeline(n: int, prompt: str = "hello", tokens: int = 1000) -> str:
    data = load(n)
    fetched = wobbly(f"item-{n}")
    answer = ask_model(f"{prompt} {data['n']}", tokens)
    return save_report(f"{fetched}; {answer}")


@fl.step
def explode(message: str) -> str:
    raise ValueError(message)


@fl.workflow(name="ui_failing")
def failing(message: str = "the input was malformed") -> str:
    load(1)
    return explode(message)


@fl.step
def gated(gate: str, position: int) -> int:
    wait_for_file(gate)
    return position


@fl.workflow(name="ui_gated")
def gated_flow(gates: list[str]) -> int:
    """One step per gate; step i waits for gate i."""
    return sum(gated(gate, position) for position, gate in enumerate(gates, 1))


@fl.step
def tick(i: int) -> int:
    return i * 2


@fl.workflow(name="ui_many")
def many(count: int) -> int:
    return sum(tick(i) for i in range(count))


class Approval(BaseModel):
    approved: bool
    by: str
    note: str = ""


@fl.workflow(name="ui_approval")
def approval(n: int) -> str:
    """Waits for an ``approve`` event (a worker suspends it: status waiting)."""
    load(n)
    decision = fl.wait_for_event("approve", model=Approval)
    return f"{'approved' if decision.approved else 'declined'} by {decision.by}"


@fl.workflow(name="ui_parent")
def parent(n: int) -> str:
    load(n)
    return pipeline(n, "child", 10)


def finished(handle: fl.RunHandle) -> str:
    """The run's id once it has ended (failed runs included): pages then show it whole."""
    with contextlib.suppress(fl.RunFailed):
        handle.result(timeout=60)
    return handle.id
