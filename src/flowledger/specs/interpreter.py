"""Runs a spec inside its run's execution, with the same recording as Python steps.

Steps run in waves (``checks.levels``): a wave's steps start together once the waves
before it are done. Positions are handed out when a wave is planned, in file order
(a ``for_each`` step takes one position per item), before any of its steps starts, so
a resumed run assigns every position exactly as the first execution did.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, DeadlineExceeded, SkipStep
from ..executor import Execution
from ..runcontext import current_execution
from ..workflow import RetryPolicy, StepDef, WorkflowDef, registered
from . import calls, kinds
from .expressions import ExpressionError, evaluate
from .model import StepSpec, seconds

if TYPE_CHECKING:
    from .document import Spec
    from .mcp_client import McpSessions

MAX_THREADS = 64
_FALSE_WORDS = frozenset({"", "false", "0", "no", "none", "null", "off"})


class SpecRuntimeError(ConfigurationError):
    """A spec's expression or value could not be used when its step came to run."""


@dataclass(frozen=True)
class Task:
    """One recorded step call of a wave: a step (or one item of a fan-out) and its position."""

    step: StepSpec
    position: int
    skip: str | None = None
    index: int | None = None
    item: Any = None

    @property
    def name(self) -> str:
        return self.step.id if self.index is None else f"{self.step.id}[{self.index}]"


def interpreter(spec: Spec, load: Callable[[str, str], Spec]) -> Callable[..., Any]:
    """The workflow function of a spec: binds its inputs and runs its steps. ``load``
    parses the text of a registered spec a ``workflow`` step starts."""
    def run(*args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(run).bind(*args, **kwargs)
        bound.apply_defaults()
        return SpecRun(spec, current_execution("a spec workflow"), dict(bound.arguments),
                       load).run()

    return run


def _skip(reason: str) -> Any:
    raise SkipStep(reason)


_SKIP_SIGNATURE = inspect.signature(_skip)
_BODY_SIGNATURE = inspect.signature(kinds.python)
_NO_RETRY = RetryPolicy()


class SpecRun:
    """One execution of a spec's steps."""

    def __init__(self, spec: Spec, execution: Execution, inputs: dict[str, Any],
                 load: Callable[[str, str], Spec]) -> None:
        self.spec = spec
        self.load = load
        self.model = spec.model
        self.execution = execution
        self.inputs = inputs
        self.outputs: dict[str, Any] = {}
        self.visible: dict[str, dict[str, Any]] = {}  # ``steps`` as expressions see it
        self.env = {name: os.environ.get(name) for name in self.model.env}
        # Declared environment values never reach the record: inputs show the name.
        self.secrets = {value: name for name, value in self.env.items()
                        if value is not None and len(value) >= 4}
        self._mcp: McpSessions | None = None
        self._mcp_lock = threading.Lock()

    # -- the run -------------------------------------------------------------------
    def run(self) -> Any:
        try:
            for wave in self.spec.waves:
                self._run_wave([self.model.steps[index] for index in wave])
            if self.model.output is None:
                return self.outputs.get(self.model.steps[-1].id)
            return self._evaluate(self.model.output, self.scope(), "output")
        finally:
            if self._mcp is not None:
                self._mcp.close()

    def scope(self, task: Task | None = None) -> dict[str, Any]:
        execution = self.execution
        scope: dict[str, Any] = {"inputs": self.inputs, "steps": self.visible,
                 "context": dict(execution.context), "env": self.env,
                 "run": {"id": execution.run_id_text, "workflow": self.model.name,
                         "version": self.spec.version}}
        if task is not None and task.index is not None:
            scope.update(item=task.item, index=task.index)
        return scope

    def _evaluate(self, value: Any, scope: Mapping[str, Any], where: str) -> Any:
        try:
            return evaluate(value, scope)
        except ExpressionError as exc:
            raise SpecRuntimeError(f"{where}: {exc}") from None

    def _plan(self, steps: list[StepSpec]) -> list[Task]:
        tasks: list[Task] = []
        allocate = self.execution.allocate
        for step in steps:
            scope = self.scope()
            if step.when is not None:
                verdict = self._evaluate(step.when, scope, f"step {step.id!r} if")
                if not _truthy(verdict):
                    tasks.append(Task(step, allocate(), skip=f"condition is false: {step.when}"))
                    continue
            if step.for_each is None:
                tasks.append(Task(step, allocate()))
                continue
            items = self._evaluate(step.for_each, scope, f"step {step.id!r} for_each")
            if not isinstance(items, list | tuple):
                raise SpecRuntimeError(f"step {step.id!r} for_each: expected a list, got "
                                       f"{type(items).__name__} ({str(items)[:100]!r})")
            tasks.extend(Task(step, allocate(), index=index, item=item)
                         for index, item in enumerate(items))
            if not items:
                self.outputs[step.id] = []
                self.visible[step.id] = {"output": []}
        return tasks

    def _run_wave(self, steps: list[StepSpec]) -> None:
        tasks = self._plan(steps)
        if len(tasks) == 1:
            results: dict[int, Any] = {0: self._execute(tasks[0], None)}
        else:
            results = self._run_concurrently(tasks)
        fanned: dict[str, list[Any]] = {}
        for number, task in enumerate(tasks):
            # What later steps see is the output as recorded (its JSON form): a resumed
            # run, which reads it back, must see the same (a date is a string in both).
            output = self._as_recorded(results[number])
            if task.index is None:
                self.outputs[task.step.id] = output
            else:
                fanned.setdefault(task.step.id, []).append(output)
        self.outputs.update(fanned)
        self.visible.update({task.step.id: {"output": self.outputs[task.step.id]}
                             for task in tasks})

    def _run_concurrently(self, tasks: list[Task]) -> dict[int, Any]:
        limits = {task.step.id: threading.Semaphore(task.step.concurrency or 1)
                  for task in tasks if task.index is not None}
        futures: list[Future[Any]] = []
        with ThreadPoolExecutor(max_workers=min(len(tasks), MAX_THREADS),
                                thread_name_prefix="flowledger-spec") as pool:
            for task in tasks:
                context = contextvars.copy_context()
                futures.append(pool.submit(context.run, self._execute, task,
                                           limits.get(task.step.id)))
        failures = [(number, future.exception()) for number, future in enumerate(futures)
                    if future.exception() is not None]
        if failures:
            # Interrupts (cancel, lease lost, shutdown) and the deadline outrank a step's
            # own failure; among failures, the earliest position's is the run's error.
            failures.sort(key=lambda pair: (isinstance(pair[1], Exception)
                                            and not isinstance(pair[1], DeadlineExceeded),
                                            pair[0]))
            raise failures[0][1]  # type: ignore[misc]
        return {number: future.result() for number, future in enumerate(futures)}

    # -- one step ------------------------------------------------------------------
    def _execute(self, task: Task, limit: threading.Semaphore | None) -> Any:
        if limit is None:
            return self._call(task)
        with limit:
            return self._call(task)

    def _call(self, task: Task) -> Any:
        step = task.step
        execution = self.execution
        if task.skip is not None:
            definition = StepDef(_skip, task.name, _NO_RETRY, None, False, False,
                                 _SKIP_SIGNATURE)
            return execution.call(definition, task.position, (task.skip,), {},
                                  input_text=lambda: None)
        scope = self.scope(task)
        if step.workflow is not None:
            return self._child(task, scope)
        request = self._request(step, scope)
        timeout = self._timeout(step)
        # Kinds other than python enforce the timeout themselves, leaving nothing running.
        # (A partial also has no return annotation to resolve at every call.)
        body = (functools.partial(calls.mcp, self._sessions(), timeout=timeout)
                if step.kind == "mcp" else
                functools.partial(_BODIES[step.kind],
                                  timeout=None if step.kind == "python" else timeout))
        definition = StepDef(body, task.name, self._policy(step),
                             timeout if step.kind == "python" else None, False, False,
                             _BODY_SIGNATURE)
        return execution.call(definition, task.position, (request,), {},
                              input_text=lambda: self._record(request, task.name))

    def _request(self, step: StepSpec, scope: Mapping[str, Any]) -> dict[str, Any]:
        where = f"step {step.id!r}"
        if step.python is not None:
            return {"function": step.python,
                    "with": self._evaluate(step.arguments or {}, scope, f"{where} with")}
        if step.shell is not None:
            argv: list[str] = []
            for part in self._evaluate(step.shell, scope, f"{where} shell"):
                argv.extend(str(p) for p in part) if isinstance(part, list) \
                    else argv.append(str(part))
            return {"argv": argv}
        if step.set is not None:
            return {"values": self._evaluate(step.set, scope, f"{where} set")}
        kind = step.kind
        body = getattr(step, kind).model_dump(by_alias=True)
        request: dict[str, Any] = self._evaluate(body, scope, f"{where} {kind}")
        if step.llm is not None:
            params = dict(request.pop("params") or {})
            for name, convert in (("temperature", float), ("max_tokens", int)):
                value = request.pop(name)
                if value is not None:
                    try:
                        params[name] = convert(value)
                    except (TypeError, ValueError):
                        raise SpecRuntimeError(f"{where} llm.{name}: {value!r} is not a "
                                               "number") from None
            request["params"] = params
        return request

    def _as_recorded(self, value: Any) -> Any:
        if value is None or isinstance(value, str | int | float | bool):
            return value
        serializer = self.execution.runtime.serializer
        return serializer.loads(serializer.dumps(value))

    def _policy(self, step: StepSpec) -> RetryPolicy:
        defaults = self.model.defaults
        return RetryPolicy(
            retries=defaults.retries if step.retries is None else step.retries,
            backoff=seconds(defaults.backoff if step.backoff is None else step.backoff) or 0.0,
            max_backoff=seconds(defaults.max_backoff) or 0.0)

    def _timeout(self, step: StepSpec) -> float | None:
        value = seconds(self.model.defaults.timeout if step.timeout is None else step.timeout)
        return value or None

    def _record(self, request: Any, name: str) -> str | None:
        return self.execution.encode(self._masked(request), f"input of step {name!r}")

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret, name in self.secrets.items():
                value = value.replace(secret, f"[env.{name}]")
            return value
        if isinstance(value, list):
            return [self._masked(item) for item in value]
        if isinstance(value, dict):
            return {key: self._masked(item) for key, item in value.items()}
        return value

    def _sessions(self) -> McpSessions:
        with self._mcp_lock:
            if self._mcp is None:
                from .mcp_client import McpSessions  # noqa: PLC0415 (the SDK loads slowly)

                servers = {name: _this_python(self._evaluate(
                                   server.model_dump(exclude_none=True), self.scope(),
                                   f"mcp_servers.{name}"))
                           for name, server in self.model.mcp_servers.items()}
                self._mcp = McpSessions(servers)
            return self._mcp

    def _child(self, task: Task, scope: Mapping[str, Any]) -> Any:
        step = task.step
        assert step.workflow is not None
        arguments = self._evaluate(step.arguments or {}, scope, f"step {step.id!r} with")
        definition = self._workflow(step.id, step.workflow)
        if definition.is_async:
            raise SpecRuntimeError(f"step {step.id!r}: workflow {definition.name!r} is "
                                   "async; a spec's workflow steps start synchronous "
                                   "workflows and specs")
        return self.execution.record_child(definition, (), arguments, task.position,
                                           task.name)

    def _workflow(self, step: str, name: str) -> WorkflowDef:
        definition = registered(name)
        if definition is not None:
            return definition
        execution = self.execution
        found = execution.runtime.store.registered_specs(execution.owner, name)
        if not found:
            raise SpecRuntimeError(f"step {step!r}: no workflow named {name!r}: neither a "
                                   "Python @workflow imported by this process nor a spec "
                                   "registered by this owner")
        return self.load(found[0].text, f"<registered spec {name}>").definition


_BODIES: dict[str, Callable[..., Any]] = {
    "python": kinds.python, "shell": kinds.shell, "http": kinds.http, "llm": calls.llm,
    "set": kinds.set_context}


def _this_python(server: dict[str, Any]) -> dict[str, Any]:
    """A stdio server started as ``python …`` runs under this interpreter, so it sees the
    packages the workflow sees (``python3`` on the PATH may be another one)."""
    command = server.get("command")
    if command and command[0] in ("python", "python3"):
        server["command"] = [sys.executable, *command[1:]]
    return server


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)
