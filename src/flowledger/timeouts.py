"""Step timeouts for synchronous code.

Python cannot kill a thread. A timed step runs in a helper thread; when it overruns,
the caller gets ``StepTimeout`` at once and the helper thread receives an asynchronous
exception that stops it at its next Python instruction. A step blocked inside C
code keeps running until that call returns, but its result is discarded.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .errors import StepTimeout


class _Overrun(BaseException):
    """Injected into an overrunning step's thread; not an Exception, so that a step's own
    ``except Exception`` cannot swallow it and carry on."""


def call_with_timeout(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
                      timeout: float | None, label: str = "step") -> Any:
    if timeout is None:
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}
    finished = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(fn, *args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            finished.set()

    worker = threading.Thread(target=target, name="flowledger-timed-step", daemon=True)
    worker.start()
    if not finished.wait(timeout):
        _interrupt(worker)
        raise StepTimeout(f"{label} exceeded its timeout of {timeout:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _interrupt(worker: threading.Thread) -> None:
    import ctypes  # noqa: PLC0415 (start-up time: only an overrunning step needs it)

    if worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident),
                                                   ctypes.py_object(_Overrun))
