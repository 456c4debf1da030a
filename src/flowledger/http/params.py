"""What the routes share: error answers for OpenAPI, time parameters, the server's
settings and redactor."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Path, Query, Request

from .. import validation
from .present import Redactor
from .schemas import Problem
from .settings import ServerSettings

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (401, 404, 409, 413, 422, 503)}
RunId = Annotated[str, Path(max_length=64, description="A run id (or an unambiguous prefix).")]

_ISO = (r"^(\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
        r"(Z|z|[+-]\d{2}:?\d{2})?)?|\d{1,12}(\.\d{1,6})?(s|m|h|d|w))$")
IsoTime = Annotated[str | None, Query(
    pattern=_ISO, max_length=40,
    description="An ISO 8601 date or time, e.g. 2026-11-21T10:00:00Z (UTC when no "
                "offset), or a duration ago: 90s, 15m, 2h, 7d, 1w.")]


def when(value: str | None) -> datetime | timedelta | None:
    """A time query value as an aware datetime (UTC unless it says otherwise), or a
    duration ago, read as the command line reads it."""
    return validation.when(value.replace("z", "Z")) if value is not None else None


def settings_of(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def redactor_of(request: Request) -> Redactor:
    redact: Redactor = request.app.state.redact
    return redact
