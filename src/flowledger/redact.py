"""Redaction at record time: secrets are replaced by ``[redacted]`` before the store sees them.

``fl.Ledger(redact=[...])`` names the keys whose values are never recorded: a ``str`` is a
key name matched exactly, ignoring case; a compiled regex must match the whole key
(``re.fullmatch``; add ``re.IGNORECASE`` yourself). Keys are matched at any depth of a
recorded value — dicts, lists, and dataclasses and pydantic models as they serialize.
``fl.Redact(keys=..., values=...)`` adds value patterns (opt-in): each match inside any
recorded string, error message, traceback or log message is replaced. The environment
variable ``FLOWLEDGER_REDACT`` (comma-separated key names) adds keys to every Ledger,
so workers, the CLI and servers redact without code changes.

In free text (errors, tracebacks, log messages) a key is recognised in the forms
``key=value``, ``key: value``, ``'key': 'value'`` and ``"key": "value"``.

The policy on resume (docs/redaction.md): a step whose output or context values were
changed is recorded ``redacted`` and executed again on resume instead of replayed; a
run whose stored inputs were changed cannot be resumed by another process
(``RedactedInputs``), and ``Ledger.submit`` refuses such inputs.

Example::

    import re
    import flowledger as fl

    ledger = fl.Ledger(redact=fl.Redact(
        keys=["password", "api_key", re.compile(r"secret_.*")],
        values=[fl.redact.BEARER_TOKEN, fl.redact.CARD_NUMBER]))
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic_core

__all__ = ["AWS_ACCESS_KEY_ID", "BEARER_TOKEN", "CARD_NUMBER", "ENV_VAR", "MARKER", "Redact",
           "Redactor", "ValuePattern", "marked_paths", "redactor_of"]

#: What replaces a redacted value (the whole value of a key; the matching part of a string).
MARKER = "[redacted]"
#: The environment variable whose comma-separated key names every Ledger redacts.
ENV_VAR = "FLOWLEDGER_REDACT"


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only) holds."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@dataclass(frozen=True)
class ValuePattern:
    """A pattern of secret values: every match of ``pattern`` inside a recorded string is
    replaced by the marker (its ``group`` only, when given), provided ``check`` (if any)
    accepts the matched text.

    Example: ``fl.redact.ValuePattern("ticket", re.compile(r"TCK-[0-9]{8}"))``
    """

    name: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None
    group: int = 0

    def sub(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if self.check is not None and not self.check(match.group(self.group)):
                return match.group(0)
            whole, start = match.group(0), match.start(self.group) - match.start(0)
            return whole[:start] + MARKER + whole[match.end(self.group) - match.start(0):]

        return self.pattern.sub(replace, text)


#: ``Bearer <token>`` (an Authorization header's credentials): the token is replaced.
BEARER_TOKEN = ValuePattern("bearer_token",
                            re.compile(r"\b(?i:bearer)\s+([A-Za-z0-9\-._~+/]{8,}=*)"), group=1)
#: Card numbers (13 to 19 digits, spaces or dashes between groups) whose Luhn checksum
#: holds; other long numbers are left alone.
CARD_NUMBER = ValuePattern(
    "card_number", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
    check=lambda text: luhn_valid(re.sub(r"[ -]", "", text)))
#: AWS access key ids (``AKIA…``, ``ASIA…``: 20 characters).
AWS_ACCESS_KEY_ID = ValuePattern("aws_access_key_id",
                                 re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"))

_BUILTIN = (BEARER_TOKEN, CARD_NUMBER, AWS_ACCESS_KEY_ID)
KeyPattern = str | re.Pattern[str]


@dataclass(frozen=True)
class Redact:
    """What a Ledger redacts before recording: ``keys`` (a ``str``: a key name, any case;
    a compiled regex: ``fullmatch`` of the key) and ``values`` (``ValuePattern`` such as
    ``fl.redact.BEARER_TOKEN``, or a compiled regex whose every match is replaced).

    Example: ``fl.Ledger(redact=fl.Redact(keys=["password"], values=[fl.redact.CARD_NUMBER]))``
    """

    keys: Sequence[KeyPattern] = ()
    values: Sequence[ValuePattern | re.Pattern[str]] = field(default=())


def _value_pattern(item: ValuePattern | re.Pattern[str]) -> ValuePattern:
    if isinstance(item, ValuePattern):
        return item
    if isinstance(item, re.Pattern):
        return ValuePattern(item.pattern, item)
    raise TypeError(f"a value pattern is a fl.redact.ValuePattern or a compiled regex, "
                    f"not {type(item).__name__}")


# A key and its value in free text: key=value, key: value, 'key': 'value', "key": "value".
_FREE_PAIR = re.compile(
    r"""(?P<q>['"]?)(?P<key>[A-Za-z_][\w.-]*)(?P=q)(?P<sep>\s*(?::|=(?!=))\s*)"""
    r"""(?P<value>'[^'\n]*'|"[^"\n]*"|[^\s,;&)}\]'"]+)""")


class Redactor:
    """The compiled form of a ``Redact``: what the recording code calls (a Runtime holds
    one, or None when nothing is redacted)."""

    def __init__(self, keys: Iterable[KeyPattern],
                 values: Iterable[ValuePattern | re.Pattern[str]] = ()) -> None:
        names: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        for key in keys:
            if isinstance(key, str):
                if key.strip():
                    names.add(key.strip().casefold())
            elif isinstance(key, re.Pattern):
                patterns.append(key)
            else:
                raise TypeError(f"a redacted key is a str or a compiled regex, not "
                                f"{type(key).__name__}")
        self.names = frozenset(names)
        self.patterns = tuple(patterns)
        self.values = tuple(_value_pattern(v) for v in values)
        # Text holding none of the names (as a substring) and no match of a built-in
        # value pattern has nothing to redact: it is not parsed. Regex keys and other
        # value patterns (anchors, say) can match only in the parsed strings.
        self._prefilter = not self.patterns and all(v in _BUILTIN for v in self.values)

    def __bool__(self) -> bool:
        return bool(self.names or self.patterns or self.values)

    def named(self, name: str, text: str) -> tuple[str, list[str]]:
        """A value recorded under ``name`` (a context variable): all of it is replaced
        when the name matches, else it is redacted as any value."""
        if self.key_matches(name):
            return pydantic_core.to_json(MARKER).decode(), [name]
        return self.json_text(text)

    def key_matches(self, key: str) -> bool:
        if key.casefold() in self.names:
            return True
        return any(pattern.fullmatch(key) for pattern in self.patterns)

    # -- structured values (serialized JSON) ------------------------------------------
    def json_text(self, text: str) -> tuple[str, list[str]]:
        """A serialized JSON value redacted: (text, the paths changed). The text is
        returned as it is when nothing changed."""
        # Without escapes, the JSON text holds every key and string as it is.
        if self._prefilter and "\\" not in text:
            lowered = text.casefold() if self.names else ""
            if not any(name in lowered for name in self.names) and not any(
                    value.pattern.search(text) for value in self.values):
                return text, []
        try:
            value = pydantic_core.from_json(text, allow_inf_nan=True)
        except ValueError:  # not JSON (another serializer): free text rules apply
            redacted = self.free_text(text)
            return redacted, [] if redacted == text else ["(text)"]
        paths: list[str] = []
        changed = self.value(value, "", paths)
        if not paths:
            return text, []
        return pydantic_core.to_json(changed, inf_nan_mode="constants").decode(), paths

    def value(self, value: Any, path: str, paths: list[str]) -> Any:
        """A plain JSON value with matching keys' values and value patterns replaced;
        each change's path is appended to ``paths``."""
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and self.key_matches(key):
                    out[key] = MARKER
                    paths.append(where)
                else:
                    out[key] = self.value(item, where, paths)
            return out
        if isinstance(value, list):
            return [self.value(item, f"{path}[{index}]", paths)
                    for index, item in enumerate(value)]
        if isinstance(value, str) and self.values:
            replaced = self.substitute(value)
            if replaced != value:
                paths.append(path or "(value)")
            return replaced
        return value

    # -- free text (messages, tracebacks, log lines) --------------------------------------
    def substitute(self, text: str) -> str:
        for pattern in self.values:
            text = pattern.sub(text)
        return text

    def free_text(self, text: str) -> str:
        """Text with value patterns and ``key=value`` pairs of redacted keys replaced."""
        if self.names or self.patterns:
            text = self._pairs(text)
        return self.substitute(text) if self.values else text

    def _pairs(self, text: str) -> str:
        # A pair of another key consumes only its key: its "value" may hold a redacted
        # pair ("refused: password=x" is refused → "password=x", then password → x).
        parts: list[str] = []
        done = position = 0
        while (match := _FREE_PAIR.search(text, position)) is not None:
            if not self.key_matches(match.group("key")):
                position = match.end("key")
                continue
            value = match.group("value")
            quote = value[0] if value[:1] in ("'", '"') else ""
            parts += [text[done:match.start("value")], quote, MARKER, quote]
            done = position = match.end()
        return "".join(parts) + text[done:] if parts else text

    def error_json(self, text: str) -> str:
        """An error as recorded ({"type", "message", "traceback"} JSON), redacted."""
        try:
            data = pydantic_core.from_json(text)
        except ValueError:
            return self.free_text(text)
        if not isinstance(data, dict):
            return self.free_text(text)
        for name in ("message", "traceback"):
            if isinstance(data.get(name), str):
                data[name] = self.free_text(data[name])
        return pydantic_core.to_json(data).decode()

    def log_records(self, text: str) -> str:
        """An attempt's log records (a JSON array) with messages and tracebacks redacted."""
        records = pydantic_core.from_json(text)
        for record in records if isinstance(records, list) else ():
            for name in ("message", "exception"):
                if isinstance(record, dict) and isinstance(record.get(name), str):
                    record[name] = self.free_text(record[name])
        return pydantic_core.to_json(records).decode()


def env_keys() -> list[str]:
    """The key names ``FLOWLEDGER_REDACT`` lists (comma-separated)."""
    return [name.strip() for name in os.environ.get(ENV_VAR, "").split(",") if name.strip()]


def redactor_of(option: Redact | Iterable[KeyPattern] | None) -> Redactor | None:
    """The Redactor of a Ledger's ``redact=`` option plus ``FLOWLEDGER_REDACT``; None when
    nothing is redacted (the recording hot path then checks for None only)."""
    if isinstance(option, str | re.Pattern):
        option = [option]
    if isinstance(option, Redact):
        keys, values = list(option.keys), list(option.values)
    else:
        keys, values = list(option or ()), []
    redactor = Redactor([*keys, *env_keys()], values)
    return redactor if redactor else None


def marked_paths(text: str | None) -> list[str]:
    """The paths of a stored JSON value holding the marker (what redaction replaced)."""
    if not text or MARKER not in text:
        return []
    try:
        value = pydantic_core.from_json(text, allow_inf_nan=True)
    except ValueError:
        return ["(text)"]
    found: list[str] = []

    def walk(item: Any, path: str) -> None:
        if isinstance(item, dict):
            for key, child in item.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                walk(child, f"{path}[{index}]")
        elif isinstance(item, str) and MARKER in item:
            found.append(path or "(value)")

    walk(value, "")
    return found
