"""Specs registered per owner: register (PUT the YAML or JSON text), list, fetch, remove.
Runs of a registered spec start through ``POST /workflows/{name}/runs``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ..errors import ConfigurationError, SpecNotFound
from ..specs import parse_spec
from .auth import CallerDep
from .params import ERRORS, refuse_kinds, settings_of
from .schemas import SpecOut

router = APIRouter(tags=["specs"])
Version = Annotated[str | None, Query(min_length=1, max_length=100,
                                      description="One version (default: the newest).")]
_SPEC_BODY = {"content": {"application/yaml": {"schema": {"type": "string"}},
                          "application/json": {"schema": {"type": "object"}},
                          "text/plain": {"schema": {"type": "string"}}},
              "required": True, "description": "The spec's text, YAML or JSON."}


@router.put("/specs/{name}", response_model=SpecOut, status_code=200,
            responses={201: {"model": SpecOut, "description": "Registered now"}, **ERRORS},
            summary="Register a spec (YAML or JSON text) under its name",
            openapi_extra={"requestBody": _SPEC_BODY})
async def register_spec(name: str, request: Request, caller: CallerDep) -> JSONResponse:
    """The body is the spec's text; its ``name:`` must be the name in the path. 201 when
    it is registered now; 200 when this text already was (nothing changes); another text
    under an explicit version that is already registered is a 409."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError("the spec must be UTF-8 text") from None
    spec = parse_spec(text, name)
    if spec.name != name:
        raise ConfigurationError(f"the spec is named {spec.name!r}, not {name!r} (the "
                                 "name in the path)")
    refuse_kinds(spec, settings_of(request).spec_kinds)
    started = datetime.now(UTC)
    info = caller.ledger.register_spec(text, owner=caller.token.owner, file=name)
    fresh = info.registered_at is not None and info.registered_at >= started
    return JSONResponse(SpecOut.model_validate(info.to_dict(text=False)).model_dump(
        mode="json", exclude_unset=True), 201 if fresh else 200)


@router.get("/specs", response_model=list[SpecOut], responses=ERRORS,
            response_model_exclude_unset=True,
            summary="Registered specs, newest version first")
def list_specs(caller: CallerDep,
               name: Annotated[str | None, Query(min_length=1, max_length=200)] = None
               ) -> list[dict[str, Any]]:
    return [info.to_dict(text=False) for info in caller.ledger.specs(name)]


@router.get("/specs/{name}", response_model=SpecOut, responses=ERRORS,
            summary="A registered spec with its text")
def get_spec(name: str, caller: CallerDep, version: Version = None) -> dict[str, Any]:
    return caller.ledger.spec_info(name, version, owner=caller.token.owner).to_dict()


@router.delete("/specs/{name}", status_code=204, responses=ERRORS,
               summary="Unregister a spec (runs of it keep their recorded text)")
def delete_spec(name: str, caller: CallerDep, version: Version = None) -> Response:
    if not caller.ledger.unregister_spec(name, version, owner=caller.token.owner):
        raise SpecNotFound(f"no registered spec {name!r}"
                           + (f" version {version!r}" if version else ""))
    return Response(status_code=204)
