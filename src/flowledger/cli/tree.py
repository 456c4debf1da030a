"""The whole command tree: the Typer application with every command module registered.

``main`` runs it; the documentation site renders its reference from ``command`` (the
click command Typer builds), so the reference never drifts from the commands.

Example::

    from flowledger.cli.tree import app
    app(args=["runs", "--status", "failed"], prog_name="flowledger")
"""

from __future__ import annotations

from typing import Any

import typer

from . import (  # noqa: F401  (importing them registers their commands)
    api_tokens,
    artifacts,
    commands,
    keys,
    logs,
    mailbox,
    maintenance,
    otel,
    queueing,
    ratelimits,
    retention,
    serving,
    specs,
    webhooks,
)
from .app import app


def __getattr__(name: str) -> Any:
    # Built on first use: running a command builds its own (Typer does, per call).
    if name == "command":
        return typer.main.get_command(app)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app"]  # and ``command``, built on first use
