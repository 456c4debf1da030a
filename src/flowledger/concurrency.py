"""Running steps concurrently on threads while keeping their positions deterministic."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from .errors import ConfigurationError
from .runcontext import recording_execution
from .workflow import StepDef

T = TypeVar("T")


def _step_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[StepDef, tuple[Any, ...], dict[str, Any]]:
    """The step behind ``fn`` and the full arguments: ``functools.partial`` of a step
    is unwrapped, its bound arguments first."""
    while isinstance(fn, functools.partial):
        args, kwargs = (*fn.args, *args), {**fn.keywords, **kwargs}
        fn = fn.func
    definition = getattr(fn, "__flowledger_step__", None)
    if not isinstance(definition, StepDef):
        raise ConfigurationError(f"{fn!r} is not a @step: StepPool and map_steps run "
                                 "steps (decorate the function with @fl.step)")
    if definition.is_async:
        raise ConfigurationError(f"step {definition.name!r} is async: await async steps "
                                 "with asyncio.gather instead of a thread pool")
    return definition, args, kwargs


class StepPool:
    """A thread pool for steps: positions are fixed in ``submit`` order, in the caller.

    Example::

        with fl.StepPool(max_workers=8) as pool:
            futures = [pool.submit(fetch_page, url) for url in urls]
        pages = [f.result() for f in futures]
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="flowledger-step")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        definition, args, kwargs = _step_call(fn, args, kwargs)
        execution = recording_execution()
        if execution is None:
            return self._pool.submit(definition.fn, *args, **kwargs)
        position = execution.allocate()
        context = contextvars.copy_context()
        return self._pool.submit(context.run, execution.call, definition, position,
                                 args, kwargs)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)

    def __enter__(self) -> StepPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown(wait=True)


def map_steps(fn: Callable[..., T], items: Iterable[Any], *,
              max_workers: int | None = None) -> list[T]:
    """Call a step once per item on a thread pool; results in item order.

    Example::

        summaries = fl.map_steps(summarize, documents, max_workers=4)
    """
    with StepPool(max_workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
    return [future.result() for future in futures]
