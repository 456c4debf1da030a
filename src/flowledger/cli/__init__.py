"""The ``flowledger`` command: run, inspect, resume, compare, report, retain.

Every command calls the same Ledger methods as the Python API; this package only
parses arguments and renders answers. Exit codes: 0 success, 1 the workflow failed,
2 usage error, 3 not found. The application and its commands live in ``app.py`` and the
command modules, imported only when a command is run.
"""

from __future__ import annotations

import sys

from .. import __version__

EXIT_FAILED = 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowledger`` script; returns the exit code.

    Example: ``main(["runs", "--status", "failed"])``
    """
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answered without building the command tree
        print(f"flowledger {__version__}")
        return 0
    # The command tree is built only when a command runs (start-up time: --version).
    from .tree import app  # noqa: PLC0415

    try:
        app(args=argv, prog_name="flowledger")
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_FAILED)
    return 0


__all__ = ["main"]
