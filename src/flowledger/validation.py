"""One home for the rules every name follows: owners, queues, tags, keys, filters.

A name is 1-200 printable characters (no control characters: a NUL byte cannot even be
stored by PostgreSQL). Filters follow the same rule: a filter no name can match is a
mistake worth saying, not an empty page.

Example::

    queue = validation.name(value, "queue")
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import ConfigurationError

MAX_NAME = 200
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=36525)


def name(value: Any, what: str, limit: int = MAX_NAME) -> str:
    """``value`` if it is a valid name, else a ConfigurationError naming ``what``."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit \
            or not value.isprintable():
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:79] + "…"
        raise ConfigurationError(f"{what} must be 1-{limit} printable characters, "
                                 f"got {shown}")
    return value


def optional_name(value: Any, what: str, limit: int = MAX_NAME) -> str | None:
    """Like ``name``, with None allowed (an option left out)."""
    return None if value is None else name(value, what, limit)


def text(value: Any, what: str, limit: int = MAX_NAME) -> str:
    """Free text (a note): up to ``limit`` characters, no NUL or other control character
    but newlines and tabs."""
    if not isinstance(value, str) or len(value) > limit or any(
            not c.isprintable() and c not in "\n\t" for c in value):
        raise ConfigurationError(f"{what} must be up to {limit} characters of text")
    return value


def tags(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """Tags, sorted and without repeats (None or a single string are accepted)."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, Iterable):
        raise ConfigurationError(f"tags must be strings, not {values!r}")
    return tuple(sorted({name(str(tag).strip(), "a tag") for tag in values}))


def duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``90d``, ``1w``."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigurationError(f"not a duration: {text!r} (use e.g. 30m, 2h, 90d, 1w)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigurationError(f"duration {text!r} is longer than 100 years")
    return timedelta(seconds=seconds)


def when(text: str | None) -> datetime | timedelta | None:
    """A duration ago (``2h``) or an ISO date/time (``2026-11-01``, UTC unless given)."""
    if text is None:
        return None
    if _DURATION.match(text):
        return duration(text)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(f"not a time: {text!r} (use e.g. 2h or 2026-11-01)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def arguments_or_inputs(kwargs: dict[str, Any], args: Sequence[Any],
                        inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Workflow arguments given directly, or as ``inputs={...}`` — not both."""
    if inputs is None:
        return kwargs
    if args or kwargs:
        raise ConfigurationError("pass workflow arguments either directly or as "
                                 "inputs={...}, not both")
    return dict(inputs)


def deadline_seconds(value: float | timedelta | None, default: float | None) -> float | None:
    """A run's deadline in seconds: the one given, else ``default`` (the workflow's)."""
    if value is None:
        return default
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise ConfigurationError("deadline must be positive")
    return seconds
