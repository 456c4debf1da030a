"""The FastAPI application: error answers, the request-size limit, and the routers.

Example::

    from flowledger.http import ServerSettings, create_app
    app = create_app(fl.Ledger("postgresql://localhost/app"),
                     ServerSettings(workflows=frozenset({"triage"})))
    # uvicorn.run(app, port=8000) — or simply: flowledger serve --app myapp
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import (
    ConfigurationError,
    FlowledgerError,
)
from ..ledger import Ledger
from .present import Redactor
from .reference import reference_page
from .routes_mailbox import router as mailbox_router
from .routes_metrics import router as metrics_router
from .routes_runs import router as runs_router
from .routes_service import router as service_router
from .routes_specs import router as specs_router
from .routes_webhooks import router as webhooks_router
from .routes_workflows import router as workflows_router
from .settings import ServerSettings

log = logging.getLogger("flowledger.http")
PREFIX = "/api/v1"

# The HTTP status of each error category (FlowledgerError.category); the category is
# the answer's error code.
STATUS = {"not_found": 404, "invalid_input": 422, "invalid_cursor": 422,
          "payload_too_large": 413, "conflict": 409, "store_full": 503,
          "store_unavailable": 503, "store_error": 503, "failed": 500}
# What a client is told of store errors: the details (driver messages name hosts and
# ports, the database URL) go to the server log only.
_STORE_MESSAGES = {
    "store_full": "the database is out of disk space; nothing can be recorded until "
                  "space is freed",
    "store_unavailable": "the database is unavailable; try again shortly",
    "store_error": "the database refused the operation; the server log has the details",
}
_CODES = {401: "unauthorized", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          422: "invalid_input", 503: "unavailable"}


def problem(status: int, code: str, message: str,
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


def _spec_problem(found: Any) -> dict[str, Any]:
    return {"line": found.line, "column": found.column, "path": found.path,
            "message": found.message}


def _readable(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        if error.get("type") == "json_invalid":
            place = error.get("loc", ("body", "?"))[-1]
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            return f"the request body is not valid JSON: {reason} at character {place}"
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _list_names(dependant: Any) -> set[str]:
    """The query parameters that may repeat (lists, like ``status``)."""
    names = {param.alias for param in dependant.query_params
             if "list" in str(param.field_info.annotation)}
    for sub in dependant.dependencies:
        names |= _list_names(sub)
    return names


@dataclass(frozen=True)
class _QueryNames:
    names: frozenset[str]
    lists: frozenset[str]


_KNOWN: dict[int, _QueryNames] = {}


def _route_names(dependant: Any) -> _QueryNames:
    """A route's query parameters (and those that may repeat), worked out once."""
    found = _KNOWN.get(id(dependant))
    if found is None:
        found = _KNOWN[id(dependant)] = _QueryNames(frozenset(_query_names(dependant)),
                                                    frozenset(_list_names(dependant)))
    return found


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is a mistake (a typo of a filter would
    otherwise list everything): 422 naming it."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _route_names(dependant)
    unknown = sorted(set(request.query_params) - known.names)
    repeated = sorted(name for name in set(request.query_params)
                      if len(request.query_params.getlist(name)) > 1
                      and name not in known.lists)
    if repeated:
        raise ConfigurationError(f"query parameter {repeated[0]!r} takes one value, not "
                                 f"{len(request.query_params.getlist(repeated[0]))}")
    if unknown:
        raise ConfigurationError(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u[:40]) for u in unknown[:5])}; this route takes "
            f"{', '.join(sorted(known.names)) or 'none'}")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether their size is declared
    (Content-Length) or they arrive chunked."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(scope, receive, send)
                return
        received = 0
        exceeded = False  # the app may catch the error and answer: that answer is replaced
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            if exceeded:
                if not refused:
                    refused = True
                    await self._refuse(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not refused:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "payload_too_large",
                           f"request body over the server's limit of {self.limit} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(ledger: Ledger, settings: ServerSettings | None = None, *,
               on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The HTTP API over ``ledger`` (opened without ``owner=``: tokens choose the owner).

    ``on_shutdown`` runs when the server shuts down (SIGTERM, Ctrl-C), before the
    process exits: ``flowledger serve`` stops its in-process workers there.
    """
    settings = settings or ServerSettings()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    app = FastAPI(
        title="flowledger", version=__version__, openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None, redoc_url=None, lifespan=lifespan,
        dependencies=[Depends(refuse_unknown_query)],
        description="Durable workflow runs: start, inspect, stream, resume, cancel, fork.")
    app.state.ledger = ledger
    app.state.settings = settings
    app.state.redact = Redactor(settings.redact)
    app.state.settings_tag = settings.tag()
    app.state.metrics_registries = {}  # per owner scope (routes_metrics.py)
    app.include_router(workflows_router, prefix=PREFIX)
    app.include_router(specs_router, prefix=PREFIX)
    app.include_router(service_router, prefix=PREFIX)
    app.include_router(runs_router, prefix=PREFIX)
    app.include_router(mailbox_router, prefix=PREFIX)
    app.include_router(webhooks_router, prefix=PREFIX)
    app.include_router(metrics_router)  # /metrics, where Prometheus looks by default

    @app.get(f"{PREFIX}/docs", include_in_schema=False, response_class=HTMLResponse)
    def reference() -> HTMLResponse:
        return HTMLResponse(reference_page(app.openapi(), f"{PREFIX}/openapi.json"))

    @app.exception_handler(FlowledgerError)
    async def flowledger_error(_request: Request, exc: FlowledgerError) -> JSONResponse:
        code = exc.category
        if code in _STORE_MESSAGES:
            log.warning("%s (database %s)", exc, getattr(exc, "database", None))
            return problem(STATUS[code], code, _STORE_MESSAGES[code])
        if code == "failed":  # not a client's mistake: a bug or a run's failure
            log.exception("unexpected flowledger error", exc_info=exc)
            return problem(500, "internal", "internal error")
        answer = problem(STATUS[code], code, str(exc) or type(exc).__name__)
        problems = getattr(exc, "problems", None)
        if problems:  # a spec's: each with its line, column and path
            return JSONResponse({"error": code, "message": str(exc),
                                 "problems": [_spec_problem(p) for p in problems]},
                                STATUS[code])
        return answer

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "invalid_input", _readable(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers: dict[str, Any] | None = getattr(exc, "headers", None)
        if exc.status_code == 400:  # FastAPI's answer to an unparsable body
            return problem(422, "invalid_input", f"malformed request body: {exc.detail}")
        return problem(exc.status_code, _CODES.get(exc.status_code, "error"),
                       str(exc.detail), headers)

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    # Answers over 1 KiB are compressed for clients that accept it (event streams never:
    # Starlette leaves text/event-stream alone). Level 5, not 9: JSON shrinks nearly as
    # much for a fraction of the CPU.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    return app
