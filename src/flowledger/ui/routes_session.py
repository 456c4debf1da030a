"""Logging in and out of the UI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from .access import COOKIE, Access
from .common import form_of, render, viewer_of

router = APIRouter()


def _safe_next(request: Request, target: str | None) -> str:
    """Where to go after logging in: a path of this UI only (never another site)."""
    root = request.scope.get("root_path", "")
    if target and target.startswith(f"{root}/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return f"{root}/runs"


def _logged_in(request: Request, session: str, target: str | None) -> Response:
    response = RedirectResponse(_safe_next(request, target), 303)
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, session, httponly=True, samesite="strict", secure=secure,
                        path=request.scope.get("root_path", "") or "/")
    return response


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/runs", 303)


@router.get("/login")
def login_page(request: Request,
               token: Annotated[str | None, Query(max_length=400)] = None,
               next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    """The login form; ``?token=`` (the URL ``flowledger ui`` prints) logs in at once."""
    access: Access = request.app.state.access
    if token:
        session = access.login(token)
        if session is not None:
            return _logged_in(request, session, next)
        return render(request, "login.html", 401, asks_for=access.asks_for, next=next,
                      failed="This login link was already used or is wrong. Restart "
                             "`flowledger ui` for a new one, or paste a valid token.")
    return render(request, "login.html", asks_for=access.asks_for, next=next, failed=None)


@router.post("/login")
async def login(request: Request) -> Response:
    access: Access = request.app.state.access
    form = await form_of(request)
    session = access.login(form.get("token", "")[:400])
    if session is None:
        return render(request, "login.html", 401, asks_for=access.asks_for,
                      next=form.get("next"), failed="That token is not valid (or was "
                                                    "revoked, or already used).")
    return _logged_in(request, session, form.get("next"))


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer = viewer_of(request)
    form = await form_of(request)
    if viewer.csrf_ok(form.get("csrf") or request.headers.get("x-csrf-token")):
        request.app.state.access.logout(viewer.session)
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)
    response.delete_cookie(COOKIE, path=request.scope.get("root_path", "") or "/")
    return response
