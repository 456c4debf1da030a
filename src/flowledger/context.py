"""Per-run context variables: ``fl.context.set(name, value)`` / ``fl.context.get(name)``.

Set inside a step, a value is written in the same transaction as that step's result
(a failed attempt's values are discarded with it); set in the workflow body, it is
written at once. Values are restored when the run is resumed, so they survive crashes.
Values are stored with the run's serializer and read back as plain JSON values.

Example::

    @fl.step()
    def fetch_page(url: str) -> list[str]:
        items, cursor = api.page(url, after=fl.context.get("cursor"))
        fl.context.set("cursor", cursor)
        return items
"""

from __future__ import annotations

from typing import Any

from . import ids, validation
from .errors import LeaseLost
from .runcontext import current_execution, step_of
from .serialization import check_size

__all__ = ["as_dict", "get", "items", "set"]


def set(name: str, value: Any) -> None:
    """Set a context variable of the current run (any serializable value)."""
    validation.name(name, "a context name")
    execution = current_execution("fl.context")
    runtime = execution.runtime
    what = f"context value {name!r}"
    text = check_size(runtime.serializer.dumps(value), runtime.max_payload_bytes, what)
    # This execution keeps the real value; a resumed one reads back the recorded
    # (redacted) text, unless the step that set it runs again (docs/redaction.md).
    plain = runtime.serializer.loads(text)
    changed = False
    if runtime.redactor is not None:
        text, paths = runtime.redactor.named(name, text)
        changed = bool(paths)
    step = step_of(execution)
    if step is not None:
        step.pending_context[name] = (text, plain)
        step.context_redacted = step.context_redacted or changed
        return
    if not runtime.store.set_context(execution.run_id, execution.token, name, text,
                                     ids.now_us()):
        raise LeaseLost(f"run {execution.run_id_text} is no longer held by this execution")
    execution.context[name] = plain


def get(name: str, default: Any = None) -> Any:
    """The value of a context variable of the current run, or ``default``."""
    execution = current_execution("fl.context")
    step = step_of(execution)
    if step is not None and name in step.pending_context:
        return step.pending_context[name][1]
    return execution.context.get(name, default)


def items() -> list[tuple[str, Any]]:
    """(name, value) pairs of the current run's context, like ``dict.items()``."""
    return list(as_dict().items())


def as_dict() -> dict[str, Any]:
    """All context variables of the current run, as the current step sees them."""
    execution = current_execution("fl.context")
    values = dict(execution.context)
    step = step_of(execution)
    if step is not None:
        values.update({name: value for name, (_, value) in step.pending_context.items()})
    return values
