"""Records turned into API answers: lineage grouped, payload fields redacted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..models import Run, Step

REDACTED = "[redacted]"
_LINEAGE = ("parent_id", "forked_from", "forked_from_position", "resumed_at",
            "resumed_from_position", "recovery_attempts")
_FULL_ONLY = ("entrypoint", "inputs", "output", "steps", "usage", "context", "artifacts",
              "revision")


class Redactor:
    """Replaces the values of named fields (any depth, case-insensitive) in payloads."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = frozenset(name.strip().lower() for name in fields if name.strip())

    def __call__(self, value: Any) -> Any:
        if not self.fields:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: REDACTED if str(key).lower() in self.fields else self._walk(item)
                    for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        return value


def _lineage(data: dict[str, Any]) -> dict[str, Any]:
    data["lineage"] = {name: data.pop(name) for name in _LINEAGE}
    return data


def run_full(run: Run, redact: Redactor) -> dict[str, Any]:
    data = _lineage(run.to_dict())
    data["inputs"] = redact(data["inputs"])
    data["output"] = redact(data["output"])
    data["context"] = redact(data["context"])
    for step in data["steps"]:
        _redact_step(step, redact)
    return data


def step_full(step: Step, redact: Redactor) -> dict[str, Any]:
    return _redact_step(step.to_dict(), redact)


def _redact_step(data: dict[str, Any], redact: Redactor) -> dict[str, Any]:
    data["input"] = redact(data["input"])
    data["output"] = redact(data["output"])
    return data
