"""Workflows: what this server can start, and starting a run of one."""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from ..errors import ConfigurationError, SpecNotFound, WorkflowNotFound
from ..models import to_jsonable
from ..serialization import parameter_hints
from ..traceids import continuing
from ..workflow import WorkflowDef, registered
from .auth import CallerDep
from .params import ERRORS, refuse_kinds, settings_of
from .schemas import RunAccepted, StartRun, WorkflowOut

router = APIRouter()


@router.get("/workflows", response_model=list[WorkflowOut], responses=ERRORS,
            tags=["workflows"], summary="Workflows this server can start")
def list_workflows(request: Request, caller: CallerDep) -> list[dict[str, Any]]:
    found = []
    for name in sorted(settings_of(request).workflows):
        definition = registered(name)
        if definition is not None:
            found.append({"name": name, "version": definition.version,
                          "parameters": parameters(definition)})
    served = {entry["name"] for entry in found}
    newest: dict[str, Any] = {}
    for info in caller.ledger.specs():
        if info.owner == caller.token.owner and info.name not in served:
            newest.setdefault(info.name, info)
    for name, info in sorted(newest.items()):
        definition = caller.ledger.spec(name, owner=caller.token.owner).definition
        found.append({"name": name, "version": info.version, "kind": "spec",
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
            entry["default"] = _shown(param.default)
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            entry["variadic"] = "list" if param.kind is param.VAR_POSITIONAL else "mapping"
        found.append(entry)
    return found


def _shown(value: Any) -> Any:
    """A default as JSON: its JSON form (an enum's value), else its repr."""
    try:
        converted = to_jsonable(value)
        json.dumps(converted, allow_nan=False)
        return converted
    except (TypeError, ValueError):
        return repr(value)


@router.post("/workflows/{name}/runs", status_code=202, response_model=RunAccepted,
             responses={200: {"model": RunAccepted,
                              "description": "An idempotency key or run id matched a run"},
                        **ERRORS},
             tags=["runs"], summary="Queue a run of a workflow")
def start_run(name: str, body: StartRun, request: Request, caller: CallerDep,
              idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
              traceparent: Annotated[str | None, Header(
                  max_length=200, description="W3C trace context: the run's trace "
                  "continues it (a malformed value is ignored)")] = None
              ) -> JSONResponse:
    """Answers 202 at once with the new run (``pending``); a worker executes it."""
    definition = registered(name) if name in settings_of(request).workflows else None
    if definition is None:  # a spec this owner registered
        try:
            spec = caller.ledger.spec(name, owner=caller.token.owner)
        except SpecNotFound:
            raise WorkflowNotFound(f"no workflow {name!r} on this server, and no spec of "
                                   "that name registered for this owner") from None
        refuse_kinds(spec, settings_of(request).spec_kinds)  # registered under other rules
        definition = spec.definition
    key = body.idempotency_key
    if idempotency_key is not None and key is not None and idempotency_key != key:
        raise ConfigurationError("the Idempotency-Key header and idempotency_key differ")
    with continuing(traceparent):
        handle = caller.ledger.submit(
            definition, inputs=body.inputs, tags=body.tags, queue=body.queue,
            owner=caller.token.owner, priority=body.priority,
            idempotency_key=key or idempotency_key, concurrency_key=body.concurrency_key,
            delay=body.delay_seconds or None, run_id=body.run_id)
    status = "pending" if handle.created else handle.status().value
    answer = {"id": handle.id, "workflow": definition.name, "status": status,
              "created": handle.created}
    return JSONResponse(answer, 202 if handle.created else 200)
