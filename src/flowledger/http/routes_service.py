"""Reports (statistics, usage) and health."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from .. import ids
from .auth import CallerDep
from .params import ERRORS, IsoTime, when
from .schemas import (
    Health,
    Problem,
    Ready,
    StatsOut,
    UsageGroupOut,
)

router = APIRouter()


@router.get("/stats", response_model=StatsOut, responses=ERRORS, tags=["reports"],
            summary="Per workflow and step: counts, success rate, durations, cost")
def stats(caller: CallerDep, workflow: Annotated[str | None, Query(max_length=200)] = None,
          since: IsoTime = None, until: IsoTime = None) -> JSONResponse:
    return JSONResponse(caller.ledger.stats(workflow=workflow, since=when(since, "since"),
                                            until=when(until, "until")).to_dict())


@router.get("/usage", response_model=list[UsageGroupOut], responses=ERRORS,
            tags=["reports"], summary="LLM tokens and cost per workflow, model or owner")
def usage(caller: CallerDep, since: IsoTime = None, until: IsoTime = None,
          group_by: Literal["workflow", "model", "owner"] = "workflow",
          workflow: Annotated[str | None, Query(max_length=200)] = None) -> JSONResponse:
    groups = caller.ledger.usage(since=when(since, "since"), until=when(until, "until"),
                                 group_by=group_by, workflow=workflow)
    return JSONResponse([group.to_dict() for group in groups])


@router.get("/healthz", response_model=Health, tags=["health"],
            summary="Liveness: the server answers (no token needed)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready, responses={503: {"model": Problem}},
            tags=["health"], summary="Readiness: the database answers (no token needed)")
def readyz(request: Request) -> dict[str, Any]:
    ledger = request.app.state.ledger
    revision = ledger.schema_revision()
    return {"status": "ready", "database": ledger.store.dialect, "schema_revision": revision,
            "process": ids.identity()}
