"""Reading a spec file: YAML (or JSON) to plain values, with the line and column of every
value so each problem can point at its place: ``flow.yaml:14:9 steps[2].llm.model: required``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ConfigurationError

Path = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a spec, and where."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where} {self.message}"


class SpecError(ConfigurationError):
    """The spec is not valid; ``problems`` lists each problem with its file position."""

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def dotted(path: Path) -> str:
    """``("steps", 2, "llm", "model")`` → ``steps[2].llm.model``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class Located:
    """Parsed values with the position of each path, for messages."""

    def __init__(self, file: str, value: Any, positions: dict[Path, Position],
                 key_positions: dict[Path, Position]) -> None:
        self.file = file
        self.value = value
        self._positions = positions
        self._keys = key_positions

    def position(self, path: Path, *, key: bool = False) -> Position:
        """Where ``path`` is (its key with ``key``); a missing path: its nearest parent."""
        path = tuple(path)
        while path:
            found = (self._keys.get(path) if key else None) or self._positions.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self._positions.get((), (1, 1))

    def problem(self, path: Path, message: str, *, key: bool = False) -> SpecProblem:
        line, column = self.position(path, key=key)
        return SpecProblem(self.file, line, column, dotted(path), message)


class _Loader(yaml.SafeLoader):
    """Plain YAML; timestamps stay strings (a spec's values are JSON values)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


# libyaml's parser, when PyYAML was built with it (its wheels are): ten times faster on
# large specs. The same resolvers (timestamps stay strings).
_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):
    class _CLoader(yaml.CSafeLoader):
        """``_Loader`` on libyaml."""

    _CLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _FastLoader = _CLoader


class _NotYaml(Exception):
    """The text is not YAML; ``problem`` says where."""

    def __init__(self, problem: SpecProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def parse(text: str, file: str = "<spec>") -> Located:
    """Parse spec text (YAML, or JSON) into values with positions. Raises SpecError.

    JSON text keeps JSON's values (YAML would read ``1e5`` as a string); its positions
    come from reading it as YAML too (tabs, JSON whitespace that YAML refuses, as spaces).
    """
    if file.lower().endswith(".json"):  # a .json file is JSON: no YAML leniency
        value = _json_value(text, file)
        try:
            located = _parse_yaml(text.replace("\t", " "), file)
        except (_NotYaml, SpecError):
            return Located(file, value, {(): (1, 1)}, {})
        located.value = value
        return located
    looks_json = text.lstrip("\ufeff \t\r\n").startswith("{")
    try:
        located = _parse_yaml(text, file)
    except _NotYaml as exc:
        if not looks_json:
            raise SpecError([exc.problem]) from None
        value = _json_value(text, file)
        try:
            located = _parse_yaml(text.replace("\t", " "), file)
        except _NotYaml:
            return Located(file, value, {(): (1, 1)}, {})
        located.value = value
        return located
    if looks_json:
        with contextlib.suppress(json.JSONDecodeError):  # else YAML flow style, not JSON
            located.value = json.loads(text.lstrip("\ufeff"))
    return located


def _parse_yaml(text: str, file: str) -> Located:
    """YAML text to values with positions: _NotYaml if it is not YAML, SpecError if its
    values are wrong (duplicate keys, tags that are not JSON values)."""
    if _FastLoader is not None:
        fast = _FastLoader(text)
        try:
            node = fast.get_single_node()
        except (yaml.YAMLError, RecursionError):
            pass  # the Python parser below says what is wrong, in its own words
        else:
            return _located(fast, node, file)
        finally:
            fast.dispose()
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or "cannot be read"
        began = exc.context_mark
        if exc.context and exc.context.startswith("while ") and began and began is not mark:
            # where the unfinished collection began: the problem is often at the file's end
            message += f" ({exc.context} at line {began.line + 1}, column {began.column + 1})"
        elif exc.context:
            message = f"{exc.context} {message}"
        raise _NotYaml(SpecProblem(file, line, column, "",
                                   f"not valid YAML: {message}")) from None
    except yaml.YAMLError as exc:
        raise _NotYaml(SpecProblem(file, 1, 1, "", f"not valid YAML: {exc}")) from None
    except RecursionError:
        raise SpecError([SpecProblem(file, 1, 1, "", "values are nested too deeply")]) from None
    finally:
        loader.dispose()
    return _located(loader, node, file)


def _located(loader: Any, node: yaml.Node | None, file: str) -> Located:
    if node is None:
        raise SpecError([SpecProblem(file, 1, 1, "", "the file is empty")])
    converter = _Converter(loader, file)
    value = converter.convert(node, ())
    if converter.problems:
        raise SpecError(converter.problems)
    return Located(file, value, converter.positions, converter.keys)


def _mark(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


MAX_VALUES = 100_000  # a spec's values after YAML aliases are expanded ("billion laughs")
MAX_DEPTH = 100
_JSON_SCALARS = (str, int, float, bool, type(None))


class _Converter:
    """YAML nodes to plain values, recording positions and the problems found."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions: dict[Path, Position] = {}
        self.keys: dict[Path, Position] = {}
        self.problems: list[SpecProblem] = []
        self.count = 0
        self.inside: set[int] = set()  # the collections being converted (alias cycles)

    def _problem(self, node: yaml.Node, path: Path, message: str) -> None:
        line, column = _mark(node)
        self.problems.append(SpecProblem(self.file, line, column, dotted(path), message))

    def convert(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            line, column = _mark(node)
            raise SpecError([SpecProblem(self.file, line, column, dotted(path),
                                         f"the spec has more than {MAX_VALUES} values "
                                         "(YAML aliases expand where they are used)")])
        self.positions[path] = _mark(node)
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self.inside or len(path) > MAX_DEPTH:
                self._problem(node, path, "an alias refers to a value that contains it"
                              if id(node) in self.inside else
                              f"values are nested more than {MAX_DEPTH} levels deep")
                return None
            self.inside.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.convert(item, (*path, index))
                        for index, item in enumerate(node.value)]
            finally:
                self.inside.discard(id(node))
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self._problem(node, path, f"bad value: {exc.problem or exc}")
            return None
        except yaml.YAMLError as exc:
            self._problem(node, path, f"bad value: {exc}")
            return None
        if not isinstance(value, _JSON_SCALARS) or (
                isinstance(value, float) and not math.isfinite(value)):
            self._problem(node, path, f"bad value: {node.value!r} is not a JSON value "
                                      "(a string, number, true/false or null)")
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        self.loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node) \
                if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                self._problem(key_node, path, "keys must be plain strings")
                continue
            name = str(key)
            child = (*path, name)
            if name in result:
                first = self.keys[child]
                self._problem(key_node, child, f"duplicate key (first at line {first[0]})")
                continue
            self.keys[child] = _mark(key_node)
            result[name] = self.convert(value_node, child)
        return result


def _json_value(text: str, file: str) -> Any:
    try:
        return json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise SpecError([SpecProblem(file, exc.lineno, exc.colno, "",
                                     f"not valid JSON: {exc.msg}")]) from None
