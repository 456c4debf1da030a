"""Starting runs, workflows, statistics, usage, health."""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from .. import validation
from ..errors import ConfigurationError, WorkflowNotFound
from ..models import to_jsonable
from ..serialization import parameter_hints
from ..workflow import WorkflowDef, registered
from .auth import CallerDep
from .schemas import (
    Health,
    Problem,
    Ready,
    RunAccepted,
    StartRun,
    StatsOut,
    UsageGroupOut,
    WorkflowOut,
)
from .settings import ServerSettings

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (401, 404, 409, 413, 422, 503)}


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


@router.get("/workflows", response_model=list[WorkflowOut], responses=ERRORS,
            tags=["workflows"], summary="Workflows this server can start")
def list_workflows(request: Request, _caller: CallerDep) -> list[dict[str, Any]]:
    found = []
    for name in sorted(_settings(request).workflows):
        definition = registered(name)
        if definition is not None:
            found.append({"name": name, "version": definition.version,
                          "parameters": parameters(definition)})
    return found


def parameters(definition: WorkflowDef) -> list[dict[str, Any]]:
    """A workflow's parameters as a client needs them: name, type, required, default."""
    hints = parameter_hints(definition.fn)
    found = []
    for name, param in definition.signature.parameters.items():
        hint = hints.get(name, param.annotation)
        kind = "any" if hint is inspect.Parameter.empty else (
            getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint))
        entry: dict[str, Any] = {"name": name, "type": kind or str(hint),
                                 "required": param.default is inspect.Parameter.empty
                                 and param.kind not in (param.VAR_POSITIONAL,
                                                        param.VAR_KEYWORD)}
        if param.default is not inspect.Parameter.empty:
            entry["default"] = to_jsonable(param.default) if _plain(param.default) \
                else repr(param.default)
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            entry["variadic"] = "list" if param.kind is param.VAR_POSITIONAL else "mapping"
        found.append(entry)
    return found


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


@router.post("/workflows/{name}/runs", status_code=202, response_model=RunAccepted,
             responses={200: {"model": RunAccepted,
                              "description": "The idempotency key matched an earlier run"},
                        **ERRORS},
             tags=["runs"], summary="Queue a run of a workflow")
def start_run(name: str, body: StartRun, request: Request, caller: CallerDep,
              idempotency_key: Annotated[str | None, Header(max_length=200)] = None
              ) -> JSONResponse:
    """Answers 202 at once with the new run (``pending``); a worker executes it."""
    definition = registered(name) if name in _settings(request).workflows else None
    if definition is None:
        raise WorkflowNotFound(f"no workflow {name!r} on this server")
    key = body.idempotency_key
    if idempotency_key is not None and key is not None and idempotency_key != key:
        raise ConfigurationError("the Idempotency-Key header and idempotency_key differ")
    handle = caller.ledger.submit(
        definition, inputs=body.inputs, tags=body.tags, queue=body.queue, owner=caller.token.owner,
        priority=body.priority, idempotency_key=key or idempotency_key,
        concurrency_key=body.concurrency_key, delay=body.delay_seconds or None)
    status = "pending" if handle.created else handle.status().value
    answer = {"id": handle.id, "workflow": definition.name, "status": status,
              "created": handle.created}
    return JSONResponse(answer, 202 if handle.created else 200)


@router.get("/stats", response_model=StatsOut, responses=ERRORS, tags=["reports"],
            summary="Per workflow and step: counts, success rate, durations, cost")
def stats(caller: CallerDep, workflow: Annotated[str | None, Query(max_length=200)] = None,
          since: IsoTime = None, until: IsoTime = None) -> JSONResponse:
    return JSONResponse(caller.ledger.stats(workflow=workflow, since=_aware(since),
                                            until=_aware(until)).to_dict())


@router.get("/usage", response_model=list[UsageGroupOut], responses=ERRORS,
            tags=["reports"], summary="LLM tokens and cost per workflow, model or owner")
def usage(caller: CallerDep, since: IsoTime = None, until: IsoTime = None,
          group_by: Literal["workflow", "model", "owner"] = "workflow",
          workflow: Annotated[str | None, Query(max_length=200)] = None) -> JSONResponse:
    groups = caller.ledger.usage(since=_aware(since), until=_aware(until), group_by=group_by,
                                 workflow=workflow)
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
    return {"status": "ready", "database": ledger.store.dialect, "schema_revision": revision}


_ISO = (r"^(\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
        r"(Z|z|[+-]\d{2}:?\d{2})?)?|\d{1,12}(\.\d{1,6})?(s|m|h|d|w))$")
IsoTime = Annotated[str | None, Query(
    pattern=_ISO, max_length=40,
    description="An ISO 8601 date or time, e.g. 2026-11-21T10:00:00Z (UTC when no "
                "offset), or a duration ago: 90s, 15m, 2h, 7d, 1w.")]


def _aware(value: str | None) -> datetime | timedelta | None:
    """A query value as an aware datetime (UTC unless it says otherwise), or a duration
    ago, read as the command line reads it."""
    return validation.when(value.replace("z", "Z")) if value is not None else None
