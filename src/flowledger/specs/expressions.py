"""Expressions in spec values: Jinja2 in a sandboxed, immutable environment.

``{{ steps.fetch.output.json.title }}`` alone in a string keeps the value's type (a list
stays a list); mixed with text it renders to a string. Expressions see ``inputs``,
``steps.<id>.output``, ``context``, ``item`` and ``index`` (in ``for_each`` steps), ``run``
and ``env`` (only the names the spec declares). Undefined names are errors, never empty
strings; Python internals (``__class__``…), files (``include``) and the process
environment are out of reach.

Example: ``evaluate("{{ inputs.n * 2 }}", {"inputs": {"n": 21}})`` → ``42``
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError, TemplateNotFound, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import ImmutableSandboxedEnvironment

NAMES = frozenset({"inputs", "steps", "context", "item", "index", "run", "env"})
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
MAX_POWER = 1000          # exponents beyond this are refused: 2 ** 10**9 would hang
MAX_REPEAT = 1_000_000    # "x" * n and [..] * n beyond this many items are refused


class ExpressionError(Exception):
    """An expression could not be evaluated (undefined name, forbidden access, bad syntax)."""


def _bounded_power(left: Any, right: Any) -> Any:
    if isinstance(right, int | float) and abs(right) > MAX_POWER:
        raise SecurityError(f"exponent {right} is too large (at most {MAX_POWER})")
    return operator.pow(left, right)


def _bounded_multiply(left: Any, right: Any) -> Any:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(count, int) \
                and len(sequence) * count > MAX_REPEAT:
            raise SecurityError(f"the result would have more than {MAX_REPEAT} items")
    return operator.mul(left, right)


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            return _bounded_power(left, right)
        if operator_name == "*":
            return _bounded_multiply(left, right)
        return super().call_binop(context, operator_name, left, right)


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


ENV = _environment()


def is_expression(text: str) -> bool:
    return "{{" in text or "{%" in text


def evaluate(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with every string expression in it evaluated (lists and mappings deeply)."""
    if isinstance(value, str):
        return _evaluate_text(value, scope) if is_expression(value) else value
    if isinstance(value, list):
        return [evaluate(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: evaluate(item, scope) for key, item in value.items()}
    return value


def _evaluate_text(text: str, scope: Mapping[str, Any]) -> Any:
    whole = _WHOLE.match(text)
    try:
        if whole and "{{" not in whole["expr"] and "{%" not in whole["expr"]:
            return ENV.compile_expression(whole["expr"], undefined_to_none=False)(**scope)
        return ENV.from_string(text).render(**scope)
    except SecurityError as exc:
        raise ExpressionError(f"{text!r}: not allowed: {exc}") from None
    except TemplateNotFound:
        raise ExpressionError(f"{text!r}: expressions cannot read files") from None
    except UndefinedError as exc:
        raise ExpressionError(f"{text!r}: {_undefined(str(exc))}") from None
    except TemplateError as exc:
        raise ExpressionError(f"{text!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise ExpressionError(f"{text!r}: {type(exc).__name__}: {exc}") from None


def _undefined(message: str) -> str:
    match = re.match(r"'(\w+)' is undefined", message)
    if match and match[1] not in NAMES:
        return (f"unknown name {match[1]!r} (expressions see "
                f"{', '.join(sorted(NAMES))})")
    return message.replace("'dict object'", "the value")


def check(text: str) -> list[str]:
    """Problems with one expression string found without running it (syntax, names)."""
    try:
        tree = ENV.parse(text)
    except TemplateError as exc:
        return [f"bad expression: {exc}"]
    unknown = sorted(find_undeclared_variables(tree) - NAMES)
    problems = [f"unknown name {name!r} in {text!r} (expressions see "
                f"{', '.join(sorted(NAMES))})" for name in unknown]
    if any(True for _ in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport,
                                        nodes.Extends))):
        problems.append(f"{text!r}: expressions cannot include or import templates")
    return problems


def references(text: str, root: str) -> set[str]:
    """The names used as ``root.NAME`` or ``root['NAME']`` in an expression string."""
    try:
        tree = ENV.parse(text)
    except TemplateError:
        return set()
    found: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == root):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(str(node.attr))
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return found


def strings(value: Any, path: tuple[str | int, ...] = ()
            ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every expression string in a value, with its path."""
    if isinstance(value, str):
        if is_expression(value):
            yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, (*path, key))


def find_names(text: str) -> set[str]:
    """The top-level names an expression string uses."""
    return set(find_undeclared_variables(ENV.parse(text)))
