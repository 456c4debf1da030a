"""What the routes share: error answers for OpenAPI, time parameters, the server's
settings and redactor."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path, Query, Request

from .. import validation
from ..errors import ConfigurationError
from .present import Redactor
from .schemas import Problem
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..specs import Spec

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (401, 404, 409, 413, 422, 503)}
RunId = Annotated[str, Path(max_length=64, description="A run id (or an unambiguous prefix).")]

# No pattern: the value is read by the same rules as the command line's, whose error
# says what a time looks like (a pattern's error would show a regular expression).
IsoTime = Annotated[str | None, Query(
    min_length=1, max_length=40,
    description="An ISO 8601 date or time, e.g. 2026-11-21T10:00:00Z (UTC when no "
                "offset), or a duration ago: 90s, 15m, 2h, 7d, 1w.")]


def when(value: str | None, name: str) -> datetime | timedelta | None:
    """The time query parameter ``name`` as an aware datetime (UTC unless it says
    otherwise), or a duration ago, read as the command line reads it."""
    if value is None:
        return None
    try:
        return validation.when(value.replace("z", "Z"))
    except ConfigurationError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def settings_of(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def redactor_of(request: Request) -> Redactor:
    redact: Redactor = request.app.state.redact
    return redact


def entity_tag(request: Request, revision: str) -> str:
    """The ETag of an answer built from a run at ``revision`` by this server (its
    settings change answers too, so they are part of it). Weak: a compressed answer
    is the same entity in other bytes."""
    return f'W/"{revision}.{request.app.state.settings_tag}"'


def not_modified(request: Request, tag: str) -> bool:
    """Whether the request's If-None-Match names ``tag`` (or ``*``): then 304 answers."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    wanted = tag.removeprefix("W/")
    return any(item.strip() == "*" or item.strip().removeprefix("W/") == wanted
               for item in header.split(","))


def refuse_kinds(spec: Spec, allowed: Sequence[str]) -> None:
    """A spec using a step kind this server does not accept is refused (422)."""
    refused = sorted(spec.kinds - set(allowed))
    if refused:
        raise ConfigurationError(
            f"this server does not accept specs with {', '.join(refused)} steps"
            + (" (a stdio MCP server counts as shell)" if "shell" in refused else "")
            + f"; allowed: {', '.join(allowed) or 'none'}")
