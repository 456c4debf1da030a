"""Comparing two runs, analytics over a window, and workers, queues and schedules."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from .common import render, viewer_of

router = APIRouter()

WINDOWS = {"1h": (timedelta(hours=1), 60), "24h": (timedelta(days=1), 48),
           "7d": (timedelta(days=7), 56), "30d": (timedelta(days=30), 60)}
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/compare")
def compare(request: Request, a: Annotated[str | None, Query(max_length=64)] = None,
            b: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    """Two runs step by step: status, duration and cost changes, output diffs."""
    viewer = viewer_of(request)
    if not a or not b:
        return render(request, "compare.html", viewer=viewer, diff=None, a=a or "",
                      b=b or "")
    diff = viewer.ledger.diff(a, b)
    return render(request, "compare.html", viewer=viewer, diff=diff, a=a, b=b)


def _window(name: str | None) -> str:
    return name if name in WINDOWS else "24h"


@router.get("/analytics")
def analytics(request: Request, window: Text = None, workflow: Text = None) -> Response:
    viewer = viewer_of(request)
    chosen = _window(window)
    span, buckets = WINDOWS[chosen]
    trends = viewer.ledger.trends(since=span, buckets=buckets, workflow=workflow or None)
    return render(request, "analytics.html", viewer=viewer, trends=trends,
                  data=trends.to_dict(), window=chosen, windows=list(WINDOWS),
                  workflow=workflow or "")


@router.get("/analytics.json")
def analytics_data(request: Request, window: Text = None,
                   workflow: Text = None) -> JSONResponse:
    viewer = viewer_of(request)
    span, buckets = WINDOWS[_window(window)]
    return JSONResponse(viewer.ledger.trends(since=span, buckets=buckets,
                                             workflow=workflow or None).to_dict())


@router.get("/workers")
def workers(request: Request) -> Response:
    """Live workers, queues and schedules. Workers and queues span every owner, so only
    admins see them; schedules are each owner's own."""
    viewer = viewer_of(request)
    ledger = viewer.ledger
    schedules = [s for s in ledger.schedules()
                 if viewer.admin or s.owner == ledger.owner]
    return render(request, "workers.html", viewer=viewer,
                  workers=ledger.workers(include_lost=True) if viewer.admin else None,
                  queues=ledger.queues() if viewer.admin else None, schedules=schedules)
