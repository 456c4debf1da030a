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

import functools
import operator
import re
import string
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateNotFound, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

NAMES = frozenset({"inputs", "steps", "context", "item", "index", "run", "env"})
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
MAX_POWER = 1000          # exponents beyond this are refused: 2 ** 10**9 would hang
MAX_REPEAT = 1_000_000    # "x" * n and [..] * n beyond this many items are refused
MAX_BITS = 100_000        # integers beyond this many bits are refused: (10**1000)**1000
MAX_SIZE = 10_000_000     # strings an expression builds (padding, joins, output): at most
MAX_WORK = 1_000_000      # loop iterations and calls (and each 1000 characters built)

# The work left to the expression being evaluated (loops and macros are bounded by it).
_work: ContextVar[list[int] | None] = ContextVar("flowledger_expression_work", default=None)


class ExpressionError(Exception):
    """An expression could not be evaluated (undefined name, forbidden access, bad syntax)."""


def _charge(units: int) -> None:
    left = _work.get()
    if left is not None:
        left[0] -= units
        if left[0] < 0:
            raise SecurityError(f"the expression does too much work (more than {MAX_WORK} "
                                "loop iterations and calls)")


def _built(size: int) -> None:
    """Before building a string or list of ``size`` items: refuse it if too long."""
    if size > MAX_SIZE:
        raise SecurityError(f"the result would be longer than {MAX_SIZE} characters")
    _charge(size // 1000)


def _bounded_power(left: Any, right: Any) -> Any:
    if isinstance(right, int | float) and abs(right) > MAX_POWER:
        raise SecurityError(f"the exponent is too large (at most {MAX_POWER})")
    if isinstance(left, int) and isinstance(right, int) and right > 0 \
            and left.bit_length() * right > MAX_BITS:
        raise SecurityError(f"the result would have more than {MAX_BITS} bits")
    return operator.pow(left, right)


def _bounded_multiply(left: Any, right: Any) -> Any:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(count, int):
            if len(sequence) * count > MAX_REPEAT:
                raise SecurityError(f"the result would have more than {MAX_REPEAT} items")
            _built(len(sequence) * count)
    if isinstance(left, int) and isinstance(right, int) \
            and left.bit_length() + right.bit_length() > MAX_BITS:
        raise SecurityError(f"the result would have more than {MAX_BITS} bits")
    return operator.mul(left, right)


def _bounded_add(left: Any, right: Any) -> Any:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        _built(len(left) + len(right))
    return operator.add(left, right)


def _bounded_modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        values = list(right.values()) if isinstance(right, Mapping) else (
            list(right) if isinstance(right, tuple) else [right])
        _built(_format_size(left, values, braces=False))
    return operator.mod(left, right)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d*)(?:\.(\*|\d*))?")


def _format_size(fmt: str, values: list[Any], *, braces: bool) -> int:
    """At most how long formatting ``values`` with ``fmt`` (%-style or {}-style) is."""
    star = max((v for v in values if isinstance(v, int)), default=0)  # * or {} widths

    def width(text: str) -> int:
        return star if text == "*" or "{" in text else max(
            (int(d) for d in re.findall(r"\d+", text)), default=0)

    if braces:
        try:
            specs = [spec or "" for _, field, spec, _ in string.Formatter().parse(fmt)
                     if field is not None]
        except ValueError:
            return len(fmt)  # format() says what is wrong
        widths = [width(spec) for spec in specs]
    else:
        widths = [max(width(w), width(p)) for w, p in _PERCENT.findall(fmt)]
    longest = max((len(str(v)) for v in values), default=0)
    return len(fmt) + len(widths) * longest + sum(widths)


def _replace_size(text: str, old: Any, new: Any) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    count = text.count(old) if old else len(text) + 1
    return len(text) + count * max(len(new) - len(old), 0)


def _method_size(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """How long a str method's result can be (the padding ones take a width)."""
    numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
    if name in ("ljust", "rjust", "center", "zfill"):
        return max([len(text), *numbers])
    if name == "expandtabs":
        return len(text) + text.count("\t") * max([8, *numbers])
    if name == "replace" and len(args) >= 2:
        return _replace_size(text, args[0], args[1])
    return 0


def _joined_size(separator: Any, items: list[Any]) -> int:
    return sum(len(str(item)) for item in items) + len(str(separator)) * len(items)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, and what it builds bounded: no expression may hang the
    worker or exhaust its memory (big powers and products, padding, joins, loops)."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        bounded = {"**": _bounded_power, "*": _bounded_multiply, "+": _bounded_add,
                   "%": _bounded_modulo}.get(operator_name)
        if bounded is not None:
            return bounded(left, right)
        return super().call_binop(context, operator_name, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _charge(1)
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop
            args = (_counted(args[0]), *args[1:])
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(obj, "__name__", "")
            if name == "join" and args:
                args = (list(args[0]), *args[1:])
                _built(_joined_size(owner, args[0]))
            else:
                _built(_method_size(owner, name, args, kwargs))
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt, mapped = str(value.__self__), value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            values = [*args, *kwargs.values()]
            if mapped and args and isinstance(args[0], Mapping):
                values = list(args[0].values())
            _built(_format_size(fmt, values, braces=True))
            return wrapper(*args, **kwargs)

        return bounded


def _counted(values: Any) -> Iterator[Any]:
    """A ``{% for %}`` loop's items, each charged to the expression's work."""
    for value in values:
        _charge(1)
        yield value


def _concat(parts: list[Any]) -> str:
    """``a ~ b``, bounded."""
    texts = [str(part) for part in parts]
    _built(sum(map(len, texts)))
    return "".join(texts)


class _Bounded(NodeTransformer):
    """Rewrites a parsed template so loops count their iterations and ``~`` is bounded."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_counted", [], [], None, None,
                                 lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "_concat", [], [],
                            None, None, lineno=node.lineno)


def _bounded_filter(env: _Sandbox, name: str, size: Callable[..., int]) -> None:
    """Replace filter ``name`` by one that first checks ``size(value, *args)``."""
    original = env.filters[name]
    passes = getattr(original, "jinja_pass_arg", None) is not None

    @functools.wraps(original)  # keeps its pass_eval_context / pass_environment mark
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _built(size(*(args[1:] if passes else args), **kwargs))
        return original(*args, **kwargs)

    env.filters[name] = bounded


def _join_filter(original: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(original)
    def join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
        items = list(value)
        _built(_joined_size(d, items))
        return original(eval_ctx, items, d, attribute)

    return join


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.filters["_counted"] = _counted
    env.filters["_concat"] = _concat
    env.filters["join"] = _join_filter(env.filters["join"])
    # Each size function takes the filter's own parameters (names too: keywords work).
    _bounded_filter(env, "center", lambda value, width=80: max(len(str(value)), width))
    _bounded_filter(env, "indent", lambda s, width=4, **_: len(str(s)) + (
        str(s).count("\n") + 1) * (width if isinstance(width, int) else len(str(width))))
    _bounded_filter(env, "format", lambda value, *args, **kwargs: _format_size(
        str(value), [*args, *kwargs.values()], braces=False))
    _bounded_filter(env, "replace", lambda s, old, new, count=None: _replace_size(
        str(s), old, new))
    _bounded_filter(env, "batch", lambda value, linecount, fill_with=None:
                    0 if fill_with is None else linecount)
    _bounded_filter(env, "slice", lambda value, slices, fill_with=None: slices)
    _bounded_filter(env, "wordwrap", lambda s, width=79, wrapstring=None, **_:
                    len(str(s)) * (1 + len(wrapstring or "\n")))
    _bounded_filter(env, "tojson", lambda value, indent=None:
                    MAX_SIZE + 1 if isinstance(indent, int) and indent > 100 else 0)
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
    budget = _work.set([MAX_WORK])
    try:
        if whole and "{{" not in whole["expr"] and "{%" not in whole["expr"]:
            return _defined(_expression(whole["expr"])(**scope))
        return _render(text, scope)
    except SecurityError as exc:
        raise ExpressionError(f"{text!r}: not allowed: {exc}") from None
    except TemplateNotFound:
        raise ExpressionError(f"{text!r}: expressions cannot read files") from None
    except UndefinedError as exc:
        raise ExpressionError(f"{text!r}: {_undefined(str(exc))}") from None
    except TemplateError as exc:
        raise ExpressionError(f"{text!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        raise ExpressionError(f"{text!r}: {type(exc).__name__}: {exc}") from None
    finally:
        _work.reset(budget)


# Compiled once per text and process: a spec evaluates the same strings at every step
# and on every run, and compiling costs far more than evaluating.
@functools.lru_cache(maxsize=4096)
def _expression(source: str) -> Callable[..., Any]:
    return ENV.compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=1024)
def _template(text: str) -> Template:
    tree = ENV.parse(text)
    if any(True for _ in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport,
                                        nodes.Extends))):
        raise SecurityError("expressions cannot include or import templates (no files)")
    return ENV.from_string(_Bounded().visit(tree))


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> nodes.Template:
    """The syntax tree of an expression string, for the checks (never rendered: the
    renderer rewrites its own)."""
    return ENV.parse(text)


def _render(text: str, scope: Mapping[str, Any]) -> str:
    output: list[str] = []
    size = 0
    for chunk in _template(text).generate(**scope):
        size += len(chunk)
        if size > MAX_SIZE:
            _built(size)  # refuses it
        output.append(chunk)
    _charge(size // 1000)
    return "".join(output)


def _defined(value: Any) -> Any:
    """A whole expression's value, deeply checked for undefined parts (a bare undefined
    value is not rendered, so StrictUndefined would not raise); iterators become lists."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises the error that says what is undefined
        raise UndefinedError("the value is undefined")
    if isinstance(value, Iterator | range):
        value = list(_counted(value))
    if isinstance(value, list | tuple):
        for item in value:
            _defined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _defined(item)
    return value


def _undefined(message: str) -> str:
    match = re.match(r"'(\w+)' is undefined", message)
    if match and match[1] not in NAMES:
        return (f"unknown name {match[1]!r} (expressions see "
                f"{', '.join(sorted(NAMES))})")
    return message.replace("'dict object'", "the value")


def check(text: str) -> list[str]:
    """Problems with one expression string found without running it (syntax, names)."""
    try:
        tree = _parsed(text)
    except TemplateError as exc:
        return [f"bad expression: {exc}"]
    unknown = sorted(find_names(text) - NAMES)
    problems = [f"unknown name {name!r} in {text!r} (expressions see "
                f"{', '.join(sorted(NAMES))})" for name in unknown]
    if any(True for _ in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport,
                                        nodes.Extends))):
        problems.append(f"{text!r}: expressions cannot include or import templates")
    return problems


def references(text: str, root: str) -> set[str]:
    """The names used as ``root.NAME`` or ``root['NAME']`` in an expression string."""
    try:
        tree = _parsed(text)
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


@functools.lru_cache(maxsize=4096)
def find_names(text: str) -> frozenset[str]:
    """The top-level names an expression string uses."""
    return frozenset(find_undeclared_variables(_parsed(text)))
