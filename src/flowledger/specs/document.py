"""A validated spec: its text, digest, model, dependencies and waves, and the workflow
definition that runs it (``Spec.definition``).

Example::

    spec = fl.load_spec("flows/triage.yaml")
    ledger.run(spec, issue=42)
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigurationError
from ..store import SPEC_ENTRYPOINT
from ..workflow import MAX_NAME, MAX_VERSION, WorkflowDef
from . import checks
from .model import SpecModel, seconds
from .source import SpecError, SpecProblem, parse

# Top-level keys for tools and people, not the engine: a JSON spec's schema and comment.
ANNOTATIONS = frozenset({"$schema", "$comment"})
_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                          "array": list[Any], "object": dict[str, Any], "any": Any}


@dataclass(frozen=True)
class Spec:
    """A workflow spec that passed validation; run it like a ``@workflow``.

    ``version`` is the spec's own, or the first 12 hex digits of its text's SHA-256.
    """

    text: str
    file: str
    model: SpecModel = field(repr=False)
    needs: dict[str, list[str]] = field(repr=False)
    waves: tuple[tuple[int, ...], ...] = field(repr=False)

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        given = self.model.version
        return self.digest[:12] if given is None else str(given)

    @property
    def step_ids(self) -> list[str]:
        return [step.id for step in self.model.steps]

    @property
    def kinds(self) -> frozenset[str]:
        """The step kinds it uses; a stdio MCP server counts as ``shell`` (it starts a
        command on the worker)."""
        used = {step.kind for step in self.model.steps}
        if any(server.command for server in self.model.mcp_servers.values()):
            used.add("shell")
        return frozenset(used)

    @functools.cached_property
    def definition(self) -> WorkflowDef:
        """The workflow definition that runs this spec (its entrypoint names the digest)."""
        from .interpreter import interpreter  # noqa: PLC0415 (the interpreter imports this)

        run = interpreter(self, recorded_spec)
        parameters = []
        annotations: dict[str, Any] = {"return": Any}
        for name, declared in self.model.inputs.items():
            annotation = _TYPES[declared.type]
            if declared.enum is not None:
                annotation = Literal[tuple(declared.enum)]
            annotations[name] = annotation
            parameters.append(inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation,
                default=declared.default if not declared.required else inspect.Parameter.empty))
        # Required inputs first: a Python signature wants defaults last.
        parameters.sort(key=lambda p: p.default is not inspect.Parameter.empty)
        signature = inspect.Signature(parameters, return_annotation=Any)
        run.__signature__ = signature  # type: ignore[attr-defined]
        run.__annotations__ = annotations
        run.__name__ = run.__qualname__ = self.name
        return WorkflowDef(run, self.name, self.version, SPEC_ENTRYPOINT + self.digest,
                           seconds(self.model.deadline), False, signature, source=self.text)

    @property
    def __flowledger_workflow__(self) -> WorkflowDef:
        # What ``Ledger.run``/``start``/``submit`` look for on a workflow reference.
        return self.definition


def parse_spec(text: str, file: str = "<spec>") -> Spec:
    """Validate spec text (YAML or JSON); raises SpecError listing every problem.

    Example: ``spec = fl.parse_spec(open("flow.yaml").read(), "flow.yaml")``
    """
    located = parse(text, file)
    if not isinstance(located.value, dict):
        raise SpecError([located.problem((), "a spec is a mapping (flowledger: 1, name:, "
                                             "steps: …)")])
    model, problems = checks.shape(located, ignore=ANNOTATIONS)
    if model is None:  # the graph's problems too, where ids and needs are usable
        _, graph_problems = checks.graph(located, checks.raw_step_refs(located.value))
        seen = {problem.path for problem in problems}
        problems += [problem for problem in graph_problems if problem.path not in seen]
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column, p.path)))
    problems = _names(located, model)
    needs, graph_problems = checks.graph(located, checks.step_refs(model))
    problems += graph_problems
    if not problems:
        problems += checks.references(located, model, needs)
    for name, step in enumerate(model.steps):
        if step.mcp is not None and step.mcp.server not in model.mcp_servers:
            problems.append(located.problem(("steps", name, "mcp", "server"),
                                            f"unknown MCP server {step.mcp.server!r} "
                                            "(declare it under mcp_servers:)"))
    if problems:
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column, p.path)))
    return Spec(text, file, model, needs, checks.levels(model, needs))


def _names(located: Any, model: SpecModel) -> list[SpecProblem]:
    problems = []
    if len(model.name) > MAX_NAME:
        problems.append(located.problem(("name",), f"at most {MAX_NAME} characters"))
    if model.version is not None and not 1 <= len(str(model.version)) <= MAX_VERSION:
        problems.append(located.problem(("version",), f"1 to {MAX_VERSION} characters"))
    return problems


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file (``.yaml``, ``.yml`` or ``.json``).

    Example: ``spec = fl.load_spec("flows/triage.yaml"); ledger.run(spec, issue=42)``
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"spec file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read spec file {file}: {exc}") from None
    return parse_spec(text, str(path))


@functools.lru_cache(maxsize=256)
def recorded_spec(text: str, file: str) -> Spec:
    """A spec text stored in the ledger, parsed once per process."""
    return parse_spec(text, file)


def recorded_definition(text: str, file: str) -> WorkflowDef:
    """The workflow definition of a spec text stored with a run."""
    return recorded_spec(text, file).definition
