"""What the UI's routes share: who is asking, forms, CSRF checks and rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse

from .access import COOKIE, Access, Viewer


class LoginRequired(Exception):
    """The request has no valid session: the person is sent to the login page."""


class Forbidden(Exception):
    """A state-changing request without the session's CSRF token."""


def viewer_of(request: Request) -> Viewer:
    """The person behind ``request`` (raises LoginRequired)."""
    access: Access = request.app.state.access
    session = request.cookies.get(COOKIE)
    viewer = access.viewer(session) if session else None
    if viewer is None:
        raise LoginRequired
    return viewer


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the last value of each), read without a multipart
    parser: the UI's forms are small and never upload files."""
    body = (await request.body()).decode("utf-8", "replace")
    return {name: values[-1] for name, values in parse_qs(body).items()}


async def acting_viewer(request: Request) -> tuple[Viewer, dict[str, str]]:
    """The viewer of a state-changing request, with its form, once its CSRF token
    (header ``X-CSRF-Token`` or form field ``csrf``) matched the session's."""
    viewer = viewer_of(request)
    form = await form_of(request)
    if not viewer.csrf_ok(request.headers.get("x-csrf-token") or form.get("csrf")):
        raise Forbidden
    return viewer, form


def render(request: Request, template: str, status: int = 200,
           headers: dict[str, str] | None = None, **values: Any) -> HTMLResponse:
    """A page or fragment, with what every template may use."""
    page = request.app.state.templates.get_template(template)
    viewer = values.pop("viewer", None)
    html = page.render(request=request, viewer=viewer, root=request.scope.get("root_path", ""),
                       csrf=viewer.csrf if viewer else "", **values)
    return HTMLResponse(html, status, headers=headers)


