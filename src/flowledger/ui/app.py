"""The web UI as an ASGI app: mounted at ``/ui`` by ``flowledger serve`` (logins with API
tokens) and served alone by ``flowledger ui`` (a one-time login URL).

Pages are rendered on the server (Jinja2); htmx swaps the parts that change, an event
stream tells a run page when its run changed, and the runs list polls with ETags. Every
page and action goes through the viewer's owner-scoped Ledger, as the API does.

Example::

    ui = create_ui(ledger, LocalAccess(ledger), ServerSettings())
    api.mount("/ui", ui)
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import FlowledgerError
from ..http.present import Redactor
from ..http.settings import ServerSettings
from ..ledger import Ledger
from . import routes_insight, routes_runs, routes_session
from .access import Access, Viewer
from .common import Forbidden, LoginRequired, render, viewer_of
from .views import environment

log = logging.getLogger("flowledger.ui")
STATIC = Path(__file__).parent / "static"


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    try:
        viewer: Viewer | None = viewer_of(request)
    except LoginRequired:
        viewer = None
    return render(request, "error.html", status, viewer=viewer, title=title,
                  message=message, status_code=status)


def create_ui(ledger: Ledger, access: Access, settings: ServerSettings | None = None,
              *, live_poll_seconds: float = 0.5) -> FastAPI:
    """The UI over ``ledger``; ``access`` decides who gets in. ``live_poll_seconds`` is
    how often a live run page's stream checks its run for changes (one indexed read)."""
    settings = settings or ServerSettings()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ledger = ledger
    app.state.access = access
    app.state.settings = settings
    app.state.settings_tag = settings.tag()
    app.state.redact = Redactor(settings.redact)
    app.state.templates = environment()
    app.state.live_poll_seconds = live_poll_seconds
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(routes_session.router)
    app.include_router(routes_runs.router)
    app.include_router(routes_insight.router)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        root = request.scope.get("root_path", "")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"{root}/login?next={quote(target)}"
        if request.headers.get("hx-request"):  # htmx follows this header, not a 303
            return Response(status_code=401, headers={"HX-Redirect": login})
        if request.method != "GET":
            return _error_page(request, 401, "Not logged in",
                               "Your session has ended. Log in again, then retry.")
        return RedirectResponse(login, 303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _exc: Forbidden) -> Response:
        return _error_page(request, 403, "Refused",
                           "This action did not carry this session's security token, so "
                           "it was refused. Reload the page and try again.")

    @app.exception_handler(FlowledgerError)
    async def flowledger_error(request: Request, exc: FlowledgerError) -> Response:
        code = exc.category
        if code == "not_found":
            return _error_page(request, 404, "Not found", str(exc))
        if code in ("store_unavailable", "store_error", "store_full"):
            log.warning("%s (database %s)", exc, getattr(exc, "database", None))
            return _error_page(request, 503, "The database is unavailable",
                               "The ledger's database could not be reached or refused the "
                               "request. Try again shortly; the server log has details.")
        if code == "failed":
            log.exception("unexpected flowledger error", exc_info=exc)
            return _error_page(request, 500, "Something went wrong",
                               "The server hit an unexpected error; its log has the details.")
        status = {"conflict": 409, "payload_too_large": 413}.get(code, 422)
        return _error_page(request, status, "That did not work", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "There is no page at this address.",
                    405: "This address does not take that kind of request."}
        return _error_page(request, exc.status_code,
                           "Not found" if exc.status_code == 404 else "Refused",
                           messages.get(exc.status_code, str(exc.detail)))

    return app
