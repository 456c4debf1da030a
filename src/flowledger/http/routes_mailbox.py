"""Events sent to runs: send one (``fl.wait_for_event`` receives it), list a run's."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..errors import ConfigurationError
from .auth import CallerDep
from .params import ERRORS, RunId, redactor_of
from .schemas import SentEventOut

router = APIRouter(tags=["runs"])
EventName = Annotated[str, Path(min_length=1, max_length=200,
                                description="The event's name, as the wait names it.")]
_EVENT_BODY = {"content": {"application/json": {"schema": {}}}, "required": False,
               "description": "The event's payload: any JSON value (none: null)."}


@router.post("/runs/{run_id}/events/{name}", response_model=SentEventOut, status_code=202,
             responses=ERRORS, summary="Send an event to a run (fl.wait_for_event)",
             openapi_extra={"requestBody": _EVENT_BODY})
async def send_event(run_id: RunId, name: EventName, request: Request,
                     caller: CallerDep) -> JSONResponse:
    """The event is kept until a ``fl.wait_for_event(name)`` of the run takes it (at once
    if the run waits for it now; each event is received by one wait). A payload that
    does not fit the model the run waits with is refused (422) and not kept; a run that
    has finished answers 409."""
    body = await request.body()
    try:
        payload: Any = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"the event's payload must be JSON: {exc}") from None
    sent = await run_in_threadpool(caller.ledger.send_event, run_id, name, payload)
    answer = sent.to_dict()
    answer["payload"] = redactor_of(request)(answer["payload"])
    return JSONResponse(answer, 202)


@router.get("/runs/{run_id}/inbox", response_model=list[SentEventOut], responses=ERRORS,
            summary="The events sent to a run, oldest first")
def run_inbox(run_id: RunId, request: Request, caller: CallerDep) -> JSONResponse:
    """Delivered ones name the wait that received them (``consumed_position``); the
    others wait for their wait, or say why it refused them (``error``)."""
    redact = redactor_of(request)
    answers = []
    for sent in caller.ledger.sent_events(run_id):
        answer = sent.to_dict()
        answer["payload"] = redact(answer["payload"])
        answers.append(answer)
    return JSONResponse(answers)
