"""The Typer application: global options, exit codes, and the ``command`` decorator
every command module registers with. Exit codes: 0 success, 1 the workflow failed,
2 usage error, 3 not found."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from .. import __version__
from ..errors import (
    FlowledgerError,
    RunCancelled,
    RunFailed,
)
from .state import State

app = typer.Typer(
    name="flowledger",
    help="Run durable workflows and inspect, resume, compare and retain their records.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3
F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        print(f"flowledger {__version__}")
        raise typer.Exit()


@app.callback()
def configure(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option(
        "--db", envvar="FLOWLEDGER_DATABASE_URL", show_envvar=True,
        help="Database URL (sqlite:///file.db or postgresql://…); default "
             "./.flowledger/flowledger.db.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="Print only results: no progress, no hints.")]
    = False,
    debug: Annotated[bool, typer.Option("--debug",
                                        help="Show tracebacks of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Durable workflows, recorded step by step."""
    # Like `python -m`, every command imports modules of the current folder: a run that
    # `flowledger run mod:wf` started is resumed, forked or recovered from the same place.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    ctx.obj = State(db, quiet, debug)


# The exit code of each error category (FlowledgerError.category); others exit 1.
EXIT_CODES = {"not_found": EXIT_NOT_FOUND, "invalid_input": EXIT_USAGE,
              "invalid_cursor": EXIT_USAGE, "payload_too_large": EXIT_USAGE}


def _exit_code(exc: BaseException) -> int:
    return EXIT_CODES.get(getattr(exc, "category", "failed"), EXIT_FAILED)


def command(name: str, group: typer.Typer | None = None) -> Callable[[F], F]:
    """Register a command whose flowledger errors become one line and an exit code."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except BrokenPipeError:
                # The reader went away (`flowledger export | head`): stop quietly, as
                # Unix tools do, without a second error when Python flushes stdout.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(0) from None
            except (FlowledgerError, OSError) as exc:
                debugging = "--debug" in sys.argv or _debugging(args, kwargs)
                if debugging:
                    traceback.print_exc()
                database = getattr(exc, "database", None) if debugging else None
                for problem in getattr(exc, "problems", ()):  # a spec's: one line each
                    print(f"error: {problem}", file=sys.stderr)
                if not getattr(exc, "problems", ()):
                    print(f"error: {one_line(exc)}"
                          + (f" (database {database})" if database else ""), file=sys.stderr)
                raise typer.Exit(_exit_code(exc)) from None
            except Exception as exc:  # a bug or an unforeseen input: still one line
                if "--debug" in sys.argv or _debugging(args, kwargs):
                    traceback.print_exc()
                print(f"error: {type(exc).__name__}: {one_line(exc)} (--debug shows the "
                      "traceback)", file=sys.stderr)
                raise typer.Exit(EXIT_FAILED) from None

        return (group or app).command(name)(wrapper)  # type: ignore[return-value]

    return decorate


def _debugging(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    ctx = kwargs.get("ctx") or next((a for a in args if isinstance(a, typer.Context)), None)
    state = getattr(ctx.find_root(), "obj", None) if ctx is not None else None
    return bool(getattr(state, "debug", False))


def one_line(exc: BaseException) -> str:
    if isinstance(exc, RunFailed | RunCancelled):
        return str(exc)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["app", "command", "one_line"]
