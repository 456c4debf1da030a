"""What each kind of spec step does once its values are evaluated: ``http``, ``shell``,
``python`` and ``set`` here; ``llm`` and ``mcp`` in ``calls.py``.

Each body takes the step's request (the recorded step input) and returns the step's
output; raising fails the attempt (retried by the step's policy). Errors that another
attempt cannot fix are ``NonRetryable``; those carrying ``retry_after`` make the next
attempt wait at least that long (an HTTP ``Retry-After``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from .. import context
from ..errors import ConfigurationError, NonRetryable, StepTimeout
from ..runcontext import current_call, current_step
from ..stepcall import asyncio_module

STDERR_TAIL = 2000
MAX_TEXT = 1024 * 1024  # response bodies and command output kept on the record


class StepFailed(Exception):
    """A spec step failed in a way another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StepRefused(NonRetryable):
    """A spec step failed in a way another attempt cannot fix (e.g. HTTP 404)."""


def attempt_timeout(own: float | None) -> float | None:
    """The current attempt's time limit: the step's own ``timeout`` within the run's
    deadline. Kinds other than ``python`` enforce it themselves (a killed command, a
    closed connection), so nothing is left running behind a timed-out attempt."""
    left = current_call("a spec step").timeout()  # the deadline's part
    if own is None:
        return left
    return own if left is None else min(own, left)


# -- http ----------------------------------------------------------------------------
def http(request: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """One HTTP request. 429 and 5xx and connection errors are retried (honouring
    ``Retry-After``); other 4xx fail at once. The output: status, headers, json, text."""
    import httpx  # noqa: PLC0415 (start-up time: only http steps need it)

    timeout = attempt_timeout(timeout) or 30.0
    headers = {"Idempotency-Key": current_step().idempotency_key, **request["headers"]}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            response = client.request(
                request["method"], request["url"], headers=headers,
                params=request["params"] or None, json=request.get("json"),
                content=request.get("body"))
    except httpx.TimeoutException:
        raise StepFailed(f"{request['method']} {request['url']} timed out after "
                         f"{timeout:g}s") from None
    except httpx.TransportError as exc:
        raise StepFailed(f"{request['method']} {request['url']} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    except httpx.InvalidURL as exc:
        raise StepRefused(f"invalid URL {request['url']!r}: {exc}") from None
    text = response.text[:MAX_TEXT]
    status = response.status_code
    if status >= 400:
        said = " ".join(text[:2000].split())  # an HTML error page: its words, on one line
        what = f"{request['method']} {request['url']} answered {status}" + (
            f": {said[:300]}{'…' if len(said) > 300 else ''}" if said else "")
        if status == 429 or status >= 500:
            raise StepFailed(what, _retry_after(response.headers.get("retry-after")))
        raise StepRefused(what)
    try:
        parsed = response.json() if text else None
    except ValueError:
        parsed = None
    return {"status": status, "headers": dict(response.headers), "json": parsed,
            "text": text}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


# -- shell ---------------------------------------------------------------------------
def shell(request: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run a command (an argv list, never through a shell). A non-zero exit fails the
    attempt with the exit code and the end of stderr; a timeout kills the command."""
    argv = [str(part) for part in request["argv"]]
    timeout = attempt_timeout(timeout)
    step = current_step()
    environment = {**os.environ, "FLOWLEDGER_RUN_ID": step.run_id,
                   "FLOWLEDGER_STEP_KEY": step.idempotency_key}
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, env=environment,
                                   start_new_session=True)
    except OSError as exc:
        raise StepRefused(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        raise StepTimeout(f"command {argv[0]!r} exceeded its timeout of {timeout:g}s "
                          "and was killed") from None
    except BaseException:
        _kill_group(process)  # the step was interrupted: leave no orphan behind
        process.wait()
        raise
    out = stdout.decode(errors="replace")[:MAX_TEXT]
    err = stderr.decode(errors="replace")
    if process.returncode != 0:
        tail = err[-STDERR_TAIL:].strip()
        raise StepFailed(f"command {argv[0]!r} exited with code {process.returncode}"
                         + (f": {tail}" if tail else " (no stderr)"))
    try:
        parsed = json.loads(out) if out.strip() else None
    except ValueError:
        parsed = None
    return {"exit_code": 0, "stdout": out, "stderr": err[-MAX_TEXT:], "json": parsed}


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# -- python --------------------------------------------------------------------------
def import_function(target: str) -> Callable[..., Any]:
    """The function ``package.module:function`` names."""
    module_name, _, qualname = target.partition(":")
    if os.getcwd() not in sys.path:  # like `python -m`: the working directory's modules
        sys.path.append(os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except ImportError as exc:
        raise ConfigurationError(f"python step: cannot import {module_name!r}: {exc}") from None
    except AttributeError:
        raise ConfigurationError(f"python step: {module_name} has no {qualname!r}") from None
    if not callable(found):
        raise ConfigurationError(f"python step: {target} is not callable")
    return found  # type: ignore[no-any-return]


def python(request: Mapping[str, Any], timeout: float | None = None) -> Any:
    """Call ``module:function`` with the step's ``with`` values as keyword arguments."""
    function = import_function(request["function"])
    try:
        if inspect.iscoroutinefunction(function):  # its own event loop, on this thread
            return asyncio_module().run(function(**request["with"]))
        return function(**request["with"])
    except TypeError as exc:
        if "argument" in str(exc) and exc.__traceback__ is not None \
                and exc.__traceback__.tb_next is None:
            raise StepRefused(f"python step {request['function']}: {exc}") from None
        raise


# -- set -----------------------------------------------------------------------------
def set_context(request: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Set run context variables (committed with this step's result)."""
    values = dict(request["values"])
    for name, value in values.items():
        context.set(name, value)
    return values
