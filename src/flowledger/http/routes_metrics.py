"""``GET /metrics``: Prometheus metrics, derived from the records (``prometheus.py``).

The same bearer tokens as the API: an admin token scrapes every owner's runs, another
token its owner's only (workers are shared by every owner and always shown). Each owner's
figures are kept a few seconds, so a burst of scrapes costs one query set.
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from ..prometheus import CONTENT_TYPE, exposition, registry_for
from .auth import CallerDep

router = APIRouter()
_LOCK = threading.Lock()


def _registry(request: Request, caller: CallerDep) -> CollectorRegistry:
    """The registry of the caller's scope (one per owner, and one for admins)."""
    owner = caller.ledger.owner
    registries: dict[str | None, CollectorRegistry] = request.app.state.metrics_registries
    with _LOCK:
        found = registries.get(owner)
        if found is None:
            found = registries[owner] = registry_for(caller.ledger)
        return found


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, caller: CallerDep) -> Response:
    registry = _registry(request, caller)
    body = await run_in_threadpool(exposition, registry)
    return Response(body, media_type=CONTENT_TYPE)
