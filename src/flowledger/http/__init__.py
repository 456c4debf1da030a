"""The HTTP API (``flowledger serve``): FastAPI routes over the same Ledger operations as
the CLI and the Python API."""

from __future__ import annotations

from .app import create_app
from .settings import DEFAULT_REDACT, ServerSettings

__all__ = ["DEFAULT_REDACT", "ServerSettings", "create_app"]
