"""``@workflow`` and ``@step``: definitions, retry policy, the registry, entrypoints."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

from . import validation
from .errors import ConfigurationError, NonRetryable, WorkflowNotFound
from .rates import RateSpec, StepRate, step_rate
from .runcontext import recording_execution
from .serialization import NO_HINT, bind_arguments, return_hint

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing step is retried: ``retries`` more attempts after the first.

    The n-th retry waits ``backoff * 2**(n-1)`` seconds (capped at ``max_backoff``),
    scaled by a random factor in ``[1 - jitter, 1 + jitter]`` so retries spread out.
    An error is retried unless it is a ``NonRetryable`` or listed in ``non_retryable``,
    and (with ``retry_if``) unless ``retry_if(error)`` returns false; a predicate that
    raises counts as false (logged).

    Example: ``RetryPolicy(retries=3, retry_if=lambda e: getattr(e, "status", 0) >= 500)``
    """

    retries: int = 0
    backoff: float = 0.5
    max_backoff: float = 60.0
    jitter: float = 0.5
    non_retryable: tuple[type[BaseException], ...] = ()
    retry_if: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ConfigurationError("retries, backoff and max_backoff must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("jitter must be between 0 and 1")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def delay(self, failed_attempt: int) -> float:
        base = min(self.backoff * 2.0 ** (failed_attempt - 1), self.max_backoff)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, (NonRetryable, *self.non_retryable)):
            return False
        if self.retry_if is None:
            return True
        try:
            return bool(self.retry_if(exc))
        except Exception:  # a broken predicate must not hide the step's own error
            log.warning("retry_if raised on %r: the step is not retried", exc, exc_info=True)
            return False


@dataclass(frozen=True)
class StepDef:
    fn: Callable[..., Any]
    name: str
    policy: RetryPolicy
    timeout: float | None
    record_input: bool
    is_async: bool
    signature: inspect.Signature = field(repr=False)
    # The named limit each attempt takes from (``@step(rate_limit=…)``), if any.
    rate: StepRate | None = None

    @functools.cached_property
    def return_hint(self) -> Any:
        return return_hint(self.fn)

    @functools.cached_property
    def _plain_parameters(self) -> tuple[str, ...] | None:
        kinds = {p.kind for p in self.signature.parameters.values()}
        if kinds - {inspect.Parameter.POSITIONAL_OR_KEYWORD}:
            return None
        return tuple(self.signature.parameters)

    def bind(self, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name; a fast path for the common all-positional call."""
        names = self._plain_parameters
        if names is not None and not kwargs and len(args) == len(names):
            return dict(zip(names, args, strict=True))
        return bind_arguments(self.signature, tuple(args), kwargs)


@dataclass(frozen=True)
class WorkflowDef:
    fn: Callable[..., Any]
    name: str
    version: str
    entrypoint: str
    deadline: float | None
    is_async: bool
    signature: inspect.Signature = field(repr=False)
    # A spec workflow's text (stored with each of its runs); None for Python code.
    source: str | None = field(default=None, repr=False)

    @functools.cached_property
    def return_hint(self) -> Any:
        return return_hint(self.fn)


_registry: dict[str, WorkflowDef] = {}
FILE_MODULE_PREFIX = "flowledger_file_"  # modules imported from a path by load_entrypoint
log = logging.getLogger("flowledger")
MAX_NAME = 200
MAX_VERSION = 100


def _check_name(kind: str, name: str, limit: int = MAX_NAME) -> str:
    return validation.name(name, kind, limit)


def registered(name: str) -> WorkflowDef | None:
    return _registry.get(name)


def registered_names() -> frozenset[str]:
    """Names of every workflow defined (imported) in this process."""
    return frozenset(_registry)


def _mark_async(wrapper: Callable[..., Any]) -> None:
    marker = getattr(inspect, "markcoroutinefunction", None)
    if marker is not None:
        marker(wrapper)
    else:  # Python 3.11: asyncio's own marker keeps iscoroutinefunction() truthful
        import asyncio.coroutines  # noqa: PLC0415 (start-up time: only async code needs it)

        wrapper._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]


def _default_name(fn: Callable[..., Any]) -> str:
    """The qualified name without the enclosing functions: ``Class.method`` or ``func``."""
    return fn.__qualname__.rsplit("<locals>.", 1)[-1]


def entrypoint_of(fn: Callable[..., Any]) -> str:
    """``module:qualname``, or ``/abs/file.py:qualname`` for code run as a script."""
    module = fn.__module__
    if module == "__main__" or module.startswith(FILE_MODULE_PREFIX):
        source = getattr(sys.modules.get(module), "__file__", None)
        if source:
            return f"{os.path.abspath(source)}:{fn.__qualname__}"
    return f"{module}:{fn.__qualname__}"


def load_entrypoint(entrypoint: str) -> WorkflowDef:
    """Import the code an entrypoint names and return its workflow definition."""
    target, sep, qualname = entrypoint.rpartition(":")
    if not sep or not target or not qualname:
        raise ConfigurationError(f"malformed workflow target {entrypoint!r}: expected "
                                 "package.module:workflow or path/to/file.py:workflow")
    if "<locals>" in qualname:
        raise WorkflowNotFound(
            f"entrypoint {entrypoint!r} is defined inside a function and cannot be imported; "
            "define workflows at module level to resume them from another process")
    try:
        module = _import_file(target) if target.endswith(".py") else importlib.import_module(target)
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except WorkflowNotFound:
        raise
    except AttributeError:
        raise WorkflowNotFound(f"{target} has no {qualname!r} (from {entrypoint!r})") from None
    except Exception as exc:
        raise WorkflowNotFound(f"cannot import workflow {entrypoint!r}: "
                               f"{type(exc).__name__}: {exc}") from exc
    definition = getattr(obj, "__flowledger_workflow__", None)
    if not isinstance(definition, WorkflowDef):
        raise WorkflowNotFound(f"{entrypoint!r} is not a @workflow")
    return definition


def import_apps(modules: Sequence[str]) -> None:
    """Import the modules whose workflows a worker or server serves (``--app``), which
    registers them. Example: ``import_apps(["myapp.flows"])``."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import --app {module}: {exc}") from None


def _import_file(path: str) -> Any:
    absolute = os.path.abspath(path)
    if not os.path.exists(absolute):
        raise WorkflowNotFound(f"workflow file {absolute} does not exist")
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == absolute:
            return module
    name = FILE_MODULE_PREFIX + hashlib.sha1(absolute.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, absolute)
    if spec is None or spec.loader is None:
        raise WorkflowNotFound(f"cannot load {absolute} as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    directory = os.path.dirname(absolute)
    if directory not in sys.path:  # let the script import its sibling modules
        sys.path.insert(0, directory)
    spec.loader.exec_module(module)
    return module


@overload
def step(fn: F, /) -> F: ...
@overload
def step(*, name: str | None = None, retries: int = 0, backoff: float = 0.5,
         max_backoff: float = 60.0, jitter: float = 0.5, timeout: float | None = None,
         non_retryable: tuple[type[BaseException], ...] = (),
         retry_if: Callable[[BaseException], bool] | None = None,
         record_input: bool = True, rate_limit: RateSpec = None) -> Callable[[F], F]: ...


def step(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, retries: int = 0,
         backoff: float = 0.5, max_backoff: float = 60.0, jitter: float = 0.5,
         timeout: float | None = None, non_retryable: tuple[type[BaseException], ...] = (),
         retry_if: Callable[[BaseException], bool] | None = None,
         record_input: bool = True, rate_limit: RateSpec = None) -> Any:
    """Make a function a recorded step of the workflows that call it.

    Inside a run, each call is recorded at the next position; on resume a completed
    call returns its recorded output instead of running again. Outside a run the
    function runs as plain Python. ``rate_limit`` names a shared limit
    (``Ledger.set_rate_limit``) each attempt waits for: ``"openai"``, or ``("openai",
    units)`` where units is a number or a function of the step's arguments.

    ``retries`` more attempts follow a failure, waiting ``backoff * 2**(n-1)`` seconds
    before the n-th (at most ``max_backoff``, times a random factor of ``1 ± jitter``).
    An error in ``non_retryable`` (or a ``fl.NonRetryable``) fails the step at once, and
    so does one for which ``retry_if(error)`` returns false.

    Example::

        @fl.step(retries=3, backoff=0.5, max_backoff=10, timeout=30.0,
                 non_retryable=(KeyError,),
                 retry_if=lambda e: getattr(e, "status", 500) >= 500)
        def fetch_issue(number: int) -> dict:
            return http_get(f"/issues/{number}")

        @fl.step(rate_limit=("openai-tokens", lambda prompt: len(prompt) / 4))
        def complete(prompt: str) -> str: ...
    """
    if timeout is not None and timeout <= 0:
        raise ConfigurationError("timeout must be a positive number of seconds")
    if retry_if is not None and not callable(retry_if):
        raise ConfigurationError(f"retry_if must be a callable taking the exception, not "
                                 f"{retry_if!r}")
    policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff,
                         jitter=jitter, non_retryable=tuple(non_retryable), retry_if=retry_if)
    rate = step_rate(rate_limit)

    def decorate(func: F) -> F:
        is_async = inspect.iscoroutinefunction(func)
        step_name = _check_name("step name", name or _default_name(func))
        definition = StepDef(func, step_name, policy, timeout, record_input, is_async,
                             inspect.signature(func), rate)
        if is_async:
            @functools.wraps(func)
            def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                execution = recording_execution()
                if execution is None:  # outside a run, or inside a step: plain Python
                    return func(*args, **kwargs)
                return execution.record_step_async(definition, args, kwargs)

            _mark_async(async_wrapper)
            wrapper: Any = async_wrapper
        else:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                execution = recording_execution()
                if execution is None:
                    return func(*args, **kwargs)
                return execution.record_step(definition, args, kwargs)

        wrapper.__flowledger_step__ = definition
        return wrapper  # type: ignore[no-any-return]

    return decorate(fn) if fn is not None else decorate


@overload
def workflow(fn: F, /) -> F: ...
@overload
def workflow(*, name: str | None = None, version: str = "1",
             deadline: float | None = None) -> Callable[[F], F]: ...


def workflow(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
             version: str = "1", deadline: float | None = None) -> Any:
    """Make a function a durable workflow, registered under ``name`` and ``version``.

    ``deadline`` (seconds from the run's creation) fails the run once passed. Called
    from inside another workflow it becomes a child run; outside a run it is plain Python.

    Example::

        @fl.workflow(name="triage", version="1")
        def triage(number: int) -> dict:
            return {"label": classify(fetch_issue(number))}
    """
    if deadline is not None and deadline <= 0:
        raise ConfigurationError("deadline must be a positive number of seconds")

    def decorate(func: F) -> F:
        definition = WorkflowDef(func, _check_name("workflow name", name or _default_name(func)),
                                 _check_name("workflow version", str(version), MAX_VERSION),
                                 entrypoint_of(func), deadline,
                                 inspect.iscoroutinefunction(func), inspect.signature(func))
        if definition.is_async:
            @functools.wraps(func)
            def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                parent = recording_execution()
                if parent is None:  # outside a run, or inside a step: plain Python
                    return func(*args, **kwargs)
                return parent.record_child_async(definition, args, kwargs)

            _mark_async(async_wrapper)
            wrapper: Any = async_wrapper
        else:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                parent = recording_execution()
                if parent is None:
                    return func(*args, **kwargs)
                return parent.record_child(definition, args, kwargs)

        wrapper.__flowledger_workflow__ = definition
        previous = _registry.get(definition.name)
        if previous is not None and previous.entrypoint != definition.entrypoint:
            log.warning("workflow name %r now refers to %s (was %s); runs recorded with the "
                        "other entrypoint still resume from their own code",
                        definition.name, definition.entrypoint, previous.entrypoint)
        _registry[definition.name] = definition
        return wrapper  # type: ignore[no-any-return]

    return decorate(fn) if fn is not None else decorate


class DefinesWorkflow(Protocol):
    """Anything that carries a workflow definition: a decorated function, a ``Spec``."""

    @property
    def __flowledger_workflow__(self) -> WorkflowDef: ...


# What the Ledger's methods take as a workflow: a @workflow function, its definition,
# or anything carrying one (a Spec).
WorkflowRef = Callable[..., Any] | WorkflowDef | DefinesWorkflow


def definition_of(target: Any) -> WorkflowDef:
    """The WorkflowDef behind a decorated function (or a WorkflowDef itself)."""
    if isinstance(target, WorkflowDef):
        return target
    definition = getattr(target, "__flowledger_workflow__", None)
    if not isinstance(definition, WorkflowDef):
        raise ConfigurationError(f"{target!r} is not a @workflow-decorated function")
    return definition


__all__ = ["NO_HINT", "DefinesWorkflow", "RetryPolicy", "StepDef", "WorkflowDef", "WorkflowRef",
           "definition_of",
           "entrypoint_of", "load_entrypoint", "registered", "step", "workflow"]
