"""Reading a spec file: YAML (or JSON) to plain values, with the line and column of every
value so each problem can point at its place: ``flow.yaml:14:9 steps[2].llm.model: required``.
"""

from __future__ import annotations

import json
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


def parse(text: str, file: str = "<spec>") -> Located:
    """Parse spec text (YAML, or JSON) into values with positions. Raises SpecError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if text.lstrip().startswith("{"):
            return _parse_json(text, file)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise SpecError([SpecProblem(file, line, column, "",
                                     f"not valid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise SpecError([SpecProblem(file, 1, 1, "", "the file is empty")])
    positions: dict[Path, Position] = {}
    keys: dict[Path, Position] = {}
    problems: list[SpecProblem] = []
    value = _convert(loader, node, (), positions, keys, problems, file)
    if problems:
        raise SpecError(problems)
    return Located(file, value, positions, keys)


def _mark(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path,
             positions: dict[Path, Position], keys: dict[Path, Position],
             problems: list[SpecProblem], file: str) -> Any:
    positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node) \
                if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                line, column = _mark(key_node)
                problems.append(SpecProblem(file, line, column, dotted(path),
                                            "keys must be plain strings"))
                continue
            name = str(key)
            child = (*path, name)
            if name in result:
                line, column = _mark(key_node)
                first = keys[child]
                problems.append(SpecProblem(file, line, column, dotted(child),
                                            f"duplicate key (first at line {first[0]})"))
                continue
            keys[child] = _mark(key_node)
            result[name] = _convert(loader, value_node, child, positions, keys, problems, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, index), positions, keys, problems, file)
                for index, item in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        line, column = _mark(node)
        problems.append(SpecProblem(file, line, column, dotted(path), f"bad value: {exc}"))
        return None


def _parse_json(text: str, file: str) -> Located:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError([SpecProblem(file, exc.lineno, exc.colno, "",
                                     f"not valid JSON: {exc.msg}")]) from None
    return Located(file, value, {(): (1, 1)}, {})
