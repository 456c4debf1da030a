"""Validating a spec: its shape (the pydantic models), then what the shape cannot say —
duplicate ids, unknown ``needs``, cycles, expressions that refer to names the step cannot
see (a step that does not run before it, an undeclared input or environment variable).
Every problem is reported with its line and column."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from . import expressions
from .model import (
    At,
    Defaults,
    HttpCall,
    InputSpec,
    LlmCall,
    McpCall,
    McpServer,
    Message,
    SpecModel,
    StepSpec,
)
from .source import Located, Path, SpecProblem

_MODELS: tuple[type[BaseModel], ...] = (SpecModel, StepSpec, InputSpec, Defaults, McpServer,
                                        HttpCall, LlmCall, Message, McpCall)
_FIELDS = sorted({info.alias or name for model in _MODELS
                  for name, info in model.model_fields.items()})
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "list": "a list", "dictionary": "a mapping"}


def shape(located: Located, ignore: frozenset[str] = frozenset()
          ) -> tuple[SpecModel | None, list[SpecProblem]]:
    """The spec's model, or the problems that keep it from being one (top-level keys in
    ``ignore`` are left out)."""
    data = {key: value for key, value in located.value.items() if key not in ignore}
    try:
        return SpecModel.model_validate(data), []
    except ValidationError as exc:
        return None, _problems(located, exc)


def _problems(located: Located, exc: ValidationError) -> list[SpecProblem]:
    merged: dict[Path, list[str]] = {}
    keyed: set[Path] = set()
    for error in exc.errors():
        path = _data_path(located.value, tuple(error["loc"]), error["type"])
        message = _message(error)
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, At) and _has(_at(located.value, path), cause.field):
            path = (*path, cause.field)  # the field the model's check is about
            keyed.add(path)
        if error["type"] == "extra_forbidden":
            keyed.add(path)
        if message not in merged.setdefault(path, []):
            merged[path].append(message)
    problems = [located.problem(path, "; or ".join(messages), key=path in keyed)
                for path, messages in merged.items()]
    return sorted(problems, key=lambda p: (p.line, p.column, p.path))


def _data_path(data: Any, loc: Path, kind: str) -> Path:
    """The error's location in the data: union members' type tags are dropped."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if _has(current, part):
            current = current[part]
        elif kind == "missing" and isinstance(current, dict) and isinstance(part, str) \
                and part == loc[-1]:
            path.append(part)
            break
        else:
            continue
        path.append(part)
    return tuple(path)


def _at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


def _has(value: Any, part: str | int) -> bool:
    if isinstance(value, dict):
        return part in value
    return isinstance(value, list) and isinstance(part, int) and part < len(value)


def _message(error: Any) -> str:
    kind, text = error["type"], str(error["msg"])
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        field = str(error["loc"][-1])
        close = difflib.get_close_matches(field, _FIELDS, n=1)
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    context = error.get("ctx", {})
    if kind in ("too_short", "string_too_short"):
        least = int(context.get("min_length", 1))
        unit = "character" if kind == "string_too_short" else "item"
        return "must not be empty" if least == 1 else f"must have at least {least} {unit}s"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {context.get('max_length')} {unit}"
    if kind == "greater_than_equal":
        return f"must be at least {context.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {context.get('le')}"
    if text.startswith("Value error, "):
        return text.removeprefix("Value error, ")
    if text.startswith("Input should be a valid "):
        word = text.removeprefix("Input should be a valid ").split(",")[0].split(" ")[0]
        return f"must be {_TYPE_WORDS.get(word, word)}"
    if text.startswith("Input should be "):
        return "must be " + text.removeprefix("Input should be ")
    if text.startswith("String should match pattern"):
        return "has the wrong form: " + _PATTERN_HINTS.get(str(error["loc"][-1]), text)
    return text[0].lower() + text[1:]


_PATTERN_HINTS = {
    "id": "step ids are identifiers (letters, digits, _; not starting with a digit)",
    "python": "python: names a function as module:function (package.module:function)",
    "api_key_env": "api_key_env names an environment variable",
}


class StepRef(NamedTuple):
    """What the graph checks need of a step: its id and its ``needs``."""

    id: str
    needs: list[str] | None


def step_refs(spec: SpecModel) -> list[StepRef | None]:
    return [StepRef(step.id, step.needs) for step in spec.steps]


def raw_step_refs(data: Any) -> list[StepRef | None]:
    """The ids and needs of a spec that failed validation, where they are usable, so
    graph problems are reported with the others (None: a step without a usable id)."""
    steps = data.get("steps") if isinstance(data, dict) else None
    refs: list[StepRef | None] = []
    for step in steps if isinstance(steps, list) else []:
        ident = step.get("id") if isinstance(step, dict) else None
        if not isinstance(ident, str):
            refs.append(None)
            continue
        needs = step.get("needs")
        needs = [needs] if isinstance(needs, str) else needs
        usable = isinstance(needs, list) and all(isinstance(n, str) for n in needs)
        refs.append(StepRef(ident, needs if usable else None))
    return refs


def graph(located: Located, steps: Sequence[StepRef | None]
          ) -> tuple[dict[str, list[str]], list[SpecProblem]]:
    """Each step's dependencies (``needs``, by default the previous step), and the
    problems: duplicate ids, unknown steps, cycles."""
    problems: list[SpecProblem] = []
    first: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step is None:
            continue
        if step.id in first:
            line = located.position(("steps", first[step.id], "id"))[0]
            problems.append(located.problem(("steps", index, "id"),
                                            f"duplicate step id {step.id!r} (first at line "
                                            f"{line})"))
        else:
            first[step.id] = index
    needs: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        if step is None or step.id in needs:
            continue
        previous = steps[index - 1] if index else None
        wanted = step.needs if step.needs is not None else (
            [previous.id] if previous is not None else [])
        for number, name in enumerate(step.needs or []):
            if name not in first:
                problems.append(located.problem(("steps", index, "needs", number),
                                                f"unknown step {name!r}{_suggest(name, first)}"))
            elif name == step.id:
                problems.append(located.problem(("steps", index, "needs", number),
                                                "a step cannot need itself"))
        needs[step.id] = [name for name in dict.fromkeys(wanted)
                          if name in first and name != step.id]
    cycle = _cycle(needs, list(first))
    if cycle:
        index = first[cycle[0]]
        problems.append(located.problem(("steps", index, "needs"),
                                        "cycle: " + " → ".join([*cycle, cycle[0]])))
    return needs, problems


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _cycle(needs: dict[str, list[str]], order: list[str]) -> list[str] | None:
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        trail.append(name)
        for dependency in needs.get(name, []):
            if state.get(dependency) == 1:
                return trail[trail.index(dependency):]
            if dependency not in state:
                found = visit(dependency)
                if found:
                    return found
        trail.pop()
        state[name] = 2
        return None

    for name in order:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def ancestors(needs: dict[str, list[str]]) -> dict[str, set[str]]:
    """Every step that has run before each step (transitively needed)."""
    found: dict[str, set[str]] = {}

    def of(name: str) -> set[str]:
        if name not in found:
            found[name] = set()
            for dependency in needs.get(name, []):
                found[name] |= {dependency, *of(dependency)}
        return found[name]

    for name in needs:
        of(name)
    return found


def references(located: Located, spec: SpecModel,
               needs: dict[str, list[str]]) -> list[SpecProblem]:
    """Expression problems: syntax, unknown names, steps that do not run before the
    expression is evaluated, undeclared inputs and environment variables."""
    problems: list[SpecProblem] = []
    before = ancestors(needs)
    every = set(needs)
    for path, text, visible, loops in _expressions(spec, before, every):
        for message in expressions.check(text):
            problems.append(located.problem(path, message))
        for name in expressions.references(text, "steps"):
            if name not in every:
                problems.append(located.problem(path, f"unknown step {name!r}"
                                                      f"{_suggest(name, every)}"))
            elif name not in visible:
                problems.append(located.problem(
                    path, f"refers to step {name!r}, which does not run before this "
                          f"step (add it to needs)"))
        for name in expressions.references(text, "inputs") - set(spec.inputs):
            problems.append(located.problem(path, f"unknown input {name!r}"
                                                  f"{_suggest(name, spec.inputs)}"))
        for name in expressions.references(text, "env") - set(spec.env):
            problems.append(located.problem(
                path, f"environment variable {name!r} is not declared under env: "
                      "(only declared variables are visible)"))
        if loops is not True and ({"item", "index"} & _names(text)):
            problems.append(located.problem(path, "item and index exist only in "
                                                  "for_each steps" if loops is False else
                                                  f"item and index are not defined in "
                                                  f"{path[2]}: (it is evaluated once, "
                                                  "before the items)"))
    return problems


def _names(text: str) -> set[str]:
    try:
        return set(expressions.find_names(text))
    except Exception:
        return set()


def _expressions(spec: SpecModel, before: dict[str, set[str]], every: set[str]
                 ) -> Iterator[tuple[Path, str, set[str], bool | None]]:
    """(path, expression, steps visible to it, whether item/index exist: None in the
    ``if`` and ``for_each`` of a for_each step) of each one."""
    for index, step in enumerate(spec.steps):
        data = step.model_dump(by_alias=True, exclude_none=True, exclude={"id", "needs"})
        visible = before.get(step.id, set())
        for path, text in expressions.strings(data):
            in_loop = step.for_each is not None and (
                None if path[:1] in (("for_each",), ("if",)) else True)
            yield ("steps", index, *path), text, visible, in_loop
    for path, text in expressions.strings(spec.output):
        yield ("output", *path), text, every, False
    for name, server in spec.mcp_servers.items():
        for path, text in expressions.strings(server.model_dump(exclude_none=True)):
            yield ("mcp_servers", name, *path), text, set(), False


def levels(spec: SpecModel, needs: dict[str, list[str]]) -> tuple[tuple[int, ...], ...]:
    """Steps grouped in waves: a step runs in the wave after the last of its needs. Within
    a wave steps keep their file order, so positions are the same on every execution."""
    level: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in level:
            level[name] = 1 + max((of(d) for d in needs.get(name, [])), default=-1)
        return level[name]

    depth = [of(step.id) for step in spec.steps]
    return tuple(tuple(i for i, d in enumerate(depth) if d == wave)
                 for wave in range(max(depth) + 1))
