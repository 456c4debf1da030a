"""The web UI: runs, a run's timeline and steps, comparisons, analytics, workers.

``flowledger ui`` serves it for one person (a one-time login URL); ``flowledger serve``
serves it under ``/ui/`` for teams (logins with API tokens). See docs/ui.md.

Example::

    from flowledger.ui import LocalAccess, create_ui
    ui = create_ui(ledger, LocalAccess(ledger))
"""

from __future__ import annotations

from .access import Access, LocalAccess, TokenAccess, Viewer
from .app import create_ui

__all__ = ["Access", "LocalAccess", "TokenAccess", "Viewer", "create_ui"]
