"""Turning inputs and outputs into stored text and back.

The default :class:`JsonSerializer` writes JSON with pydantic-core (dataclasses, pydantic
models, datetimes, UUIDs, decimals, enums, sets and bytes are handled) and, when reading
a value back for replay, restores the type the code annotated (a step's return type, a
workflow's parameter types) with a pydantic ``TypeAdapter``. Without an annotation the
plain JSON value comes back.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pydantic_core
from pydantic_core import ValidationError  # pydantic's own ValidationError is this class

if TYPE_CHECKING:
    from pydantic import TypeAdapter

from .encryption import readable
from .errors import ConfigurationError, PayloadTooLarge, RedactedInputs, SerializationError
from .redact import marked_paths

log = logging.getLogger("flowledger")
NO_HINT: Any = inspect.Parameter.empty


class Serializer(Protocol):
    """Pluggable payload format. ``name`` is stored with each run."""

    name: str

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str, type_hint: Any = NO_HINT) -> Any: ...


class JsonSerializer:
    """JSON via pydantic-core; restores annotated types on ``loads``.

    Example::

        JsonSerializer().loads(JsonSerializer().dumps(date(2026, 1, 2)), date)
    """

    name = "json"

    def dumps(self, value: Any) -> str:
        one_shot = _find_one_shot(value, "value")
        if one_shot is not None:
            kind = "generator" if inspect.isgenerator(one_shot[1]) else "one-shot iterator"
            raise SerializationError(
                f"{one_shot[0]} is a {kind} ({type(one_shot[1]).__qualname__}): recording "
                "it would consume it, and a replay could not give it back; return a list "
                "(e.g. list(...)) instead")
        try:
            return pydantic_core.to_json(value, bytes_mode="base64",
                                         inf_nan_mode="constants").decode()
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
            path, leaf = _find_unserializable(value, "value")
            if inspect.iscoroutine(leaf):
                raise SerializationError(
                    f"{path} is a coroutine: an async step or workflow was called without "
                    "await (call async steps from an async def workflow and await them)"
                ) from None
            raise SerializationError(
                f"{path} of type {type(leaf).__module__}.{type(leaf).__qualname__} "
                f"is not JSON-serializable ({_first_line(exc)}); return plain data "
                f"(dict/list/str/number, dataclass, pydantic model) or configure a serializer"
            ) from None

    def loads(self, text: str, type_hint: Any = NO_HINT) -> Any:
        text = readable(text)  # a payload still sealed is refused, never parsed
        if type_hint in (NO_HINT, Any, object, None) or isinstance(type_hint, str):
            return pydantic_core.from_json(text)
        adapter = _adapter(type_hint)
        if adapter is None:
            return pydantic_core.from_json(text)
        try:
            return adapter.validate_json(f"[{text}]")[0]
        except ValidationError as exc:
            log.warning("recorded value does not match annotation %r; returning plain JSON: %s",
                        type_hint, _first_line(exc))
            return pydantic_core.from_json(text)


@functools.lru_cache(maxsize=1024)
def _cached_adapter(type_hint: Any) -> TypeAdapter[Any] | None:
    # Wrapped in a 1-tuple so the config (bytes as base64, as dumps writes them) reaches
    # nested dataclasses too; pydantic refuses a config on a bare dataclass.
    # pydantic itself is imported on the first typed value: `import flowledger` stays light.
    from pydantic import ConfigDict, TypeAdapter  # noqa: PLC0415 (start-up time)

    try:
        return TypeAdapter(tuple[type_hint], config=ConfigDict(val_json_bytes="base64"))
    except Exception:
        return None


def _adapter(type_hint: Any) -> TypeAdapter[Any] | None:
    try:
        return _cached_adapter(type_hint)
    except TypeError:  # unhashable annotation
        return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


_PLAIN = (str, int, float, bool, type(None), bytes)


def _find_one_shot(value: Any, path: str) -> tuple[str, Any] | None:
    """The first generator or iterator inside plain containers: JSON encoding would
    drain it (into a list), leaving the caller an exhausted object."""
    if isinstance(value, _PLAIN):
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        items = enumerate(value)
    else:
        return (path, value) if isinstance(value, Iterator) else None
    for key, item in items:
        if not isinstance(item, _PLAIN):
            found = _find_one_shot(item, f"{path}[{key!r}]")
            if found is not None:
                return found
    return None


def _find_unserializable(value: Any, path: str) -> tuple[str, Any]:
    """Walk containers to name the first value JSON cannot hold (only on the error path)."""
    children: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        children = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [(f"{path}.{f.name}", getattr(value, f.name))
                    for f in dataclasses.fields(value)]
    for child_path, child in children:
        try:
            pydantic_core.to_json(child, bytes_mode="base64", inf_nan_mode="constants")
        except Exception:
            return _find_unserializable(child, child_path)
    return path, value


def check_size(text: str, limit: int, what: str) -> str:
    """Refuse text over ``limit`` UTF-8 bytes (encoding only when it could be over)."""
    if len(text) * 4 <= limit:
        return text
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise PayloadTooLarge(
            f"{what} is {size:,} bytes serialized, over the limit of {limit:,} "
            f"(Ledger(max_payload_bytes=...)); store large data elsewhere and return a reference"
        )
    return text


def return_hint(fn: Callable[..., Any]) -> Any:
    """The resolved return annotation, or NO_HINT when absent or unresolvable."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return NO_HINT
    return hints.get("return", NO_HINT)


def parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return {k: v for k, v in typing.get_type_hints(fn).items() if k != "return"}
    except Exception:
        return {}


def bind_arguments(signature: inspect.Signature, args: tuple[Any, ...],
                   kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Map a call to parameter names (defaults applied), the form inputs are stored in."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def call_arguments(signature: inspect.Signature,
                   values: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Rebuild ``(args, kwargs)`` from stored parameter values."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if name not in values:
            continue
        value = values[name]
        if param.kind is param.VAR_POSITIONAL:
            args.extend(value)
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        elif param.kind is param.KEYWORD_ONLY:
            kwargs[name] = value
        else:  # bound with defaults applied, so every earlier positional is present
            args.append(value)
    return args, kwargs


def refuse_redacted(text: str | None, what: str, supplied: Collection[str] = ()) -> None:
    """Raise RedactedInputs when stored inputs hold values redaction replaced (and that
    ``supplied`` parameter names do not give anew)."""
    missing = [path for path in marked_paths(text)
               if path.split(".")[0].split("[")[0] not in supplied]
    if missing:
        raise RedactedInputs(
            f"{what} cannot be executed from its record: its inputs {', '.join(missing)} "
            "were redacted when recorded (Ledger(redact=...) or FLOWLEDGER_REDACT), and the "
            "real values exist only in the process that started it. Start a new run with "
            "the values (secrets passed by reference, not as inputs)", tuple(missing))


def decode_inputs(serializer: Serializer, text: str | None, fn: Callable[..., Any], *,
                  what: str = "the run", supplied: Collection[str] = ()) -> dict[str, Any]:
    """Stored workflow inputs back to typed parameter values. Inputs that redaction
    replaced (``[redacted]``) cannot be given back: RedactedInputs names them, unless
    ``supplied`` (parameter names given anew, as a fork may) covers them."""
    if not text:
        return {}
    refuse_redacted(text, what, supplied)
    raw = serializer.loads(text)
    if not isinstance(raw, dict):
        return {}
    hints = parameter_hints(fn)
    signature = inspect.signature(fn)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        hint = hints.get(name, NO_HINT)
        param = signature.parameters.get(name)
        if param is not None and param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            hint = NO_HINT
        values[name] = value if hint is NO_HINT else serializer.loads(
            serializer.dumps(value), hint)
    return values


def coerce_inputs(fn: Callable[..., Any], values: Mapping[str, Any], *,
                  convert: bool = True) -> dict[str, Any]:
    """Check inputs against the parameter annotations; a mismatch is a
    ConfigurationError naming the parameter. With ``convert`` (inputs from JSON or the
    command line) values become the annotated types where pydantic's lax mode allows
    ("3" → 3, a dict → a dataclass); without it they are checked and kept as given.
    """

    hints = parameter_hints(fn)
    parameters = inspect.signature(fn).parameters
    checked = dict(values)
    for name, value in values.items():
        hint = hints.get(name, NO_HINT)
        if hint in (NO_HINT, Any, object) or isinstance(hint, str):
            continue
        param = parameters.get(name)
        if param is not None and param.kind is param.VAR_POSITIONAL:
            hint = tuple[hint, ...]  # type: ignore[valid-type]
        elif param is not None and param.kind is param.VAR_KEYWORD:
            hint = dict[str, hint]  # type: ignore[valid-type]
        adapter = _adapter(hint)
        if adapter is None:
            continue
        try:
            valid = adapter.validate_python((value,))[0]
        except ValidationError as exc:
            errors = exc.errors()
            where = "".join(f"[{part!r}]" for part in errors[0]["loc"][1:]) if errors else ""
            reason = errors[0]["msg"] if errors else "invalid"
            bad = repr(errors[0]["input"] if errors else value)
            shown = bad if len(bad) <= 80 else bad[:79] + "…"
            raise ConfigurationError(
                f"input {name}{where}={shown} does not fit its annotation "
                f"{getattr(hint, '__name__', hint)}: {reason}") from None
        if convert:
            checked[name] = valid
    return checked
