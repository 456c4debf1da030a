"""Runs: listing, one run, one step, logs, events, artifacts, resume, cancel, fork."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sse_starlette import EventSourceResponse

from ..models import RunStatus
from ..queueing import DEFAULT_QUEUE
from .auth import CallerDep
from .params import (
    ERRORS,
    IsoTime,
    RunId,
    entity_tag,
    not_modified,
    redactor_of,
    settings_of,
    when,
)
from .present import run_full, step_full
from .schemas import (
    ActionResult,
    AttemptLogsOut,
    BulkCancel,
    BulkResultOut,
    EventOut,
    ForkRun,
    PauseRun,
    ResumeRun,
    RunAccepted,
    RunOut,
    RunPageOut,
    RunStatusName,
    StepOut,
)

router = APIRouter(tags=["runs"])


@router.get("/runs", response_model=RunPageOut,
            responses={304: {"description": "Unchanged since the ETag given in "
                                            "If-None-Match"}, **ERRORS},
            summary="Runs, newest first, one page at a time")
def list_runs(request: Request, caller: CallerDep,
              status: Annotated[list[RunStatusName] | None, Query()] = None,
              workflow: Annotated[str | None, Query(max_length=200)] = None,
              tag: Annotated[str | None, Query(max_length=200)] = None,
              queue: Annotated[str | None, Query(max_length=200)] = None,
              owner: Annotated[str | None, Query(
                  max_length=200, description="Admin tokens: that owner's runs (other "
                                              "tokens see only their own).")] = None,
              since: IsoTime = None, until: IsoTime = None,
              parent: Annotated[str | None, Query(
                  max_length=36, description="Only the child runs of this run.")] = None,
              forked_from: Annotated[str | None, Query(
                  max_length=36, description="Only the forks of this run.")] = None,
              top_level: Annotated[bool, Query(
                  description="Only runs that are no other run's child.")] = False,
              executor: Annotated[str | None, Query(
                  max_length=300, description="Only runs this process executes or last "
                  "executed (host:pid:start), or a prefix ending with ':' (host:).")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              cursor: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{27}$")] = None,
              if_none_match: Annotated[str | None, Header(
                  max_length=8000, description="The ETag of an earlier answer: 304 if the "
                                               "page is unchanged.")] = None,
              ) -> Response:
    """``since`` is inclusive, ``until`` exclusive; pass ``next_cursor`` back as ``cursor``.
    The answer's ETag changes whenever the page would; send it back in If-None-Match to
    get 304 while nothing changed (one light query)."""
    listing: dict[str, Any] = {
        "status": status, "workflow": workflow, "tag": tag, "owner": owner, "queue": queue,
        "since": when(since, "since"), "until": when(until, "until"), "limit": limit,
        "cursor": cursor, "parent": parent, "forked_from": forked_from,
        "top_level": top_level, "executor": executor}
    if if_none_match:
        tag_now = entity_tag(request, caller.ledger.summaries_revision(**listing))
        if not_modified(request, tag_now):
            return Response(status_code=304, headers={"ETag": tag_now})
    page = caller.ledger.summaries(**listing)
    return JSONResponse({"runs": page.runs, "next_cursor": page.next_cursor},
                        headers={"ETag": entity_tag(request, page.revision)})


@router.get("/runs/{run_id}", response_model=RunOut,
            responses={304: {"description": "Unchanged since the ETag given in "
                                            "If-None-Match"}, **ERRORS},
            summary="A run with its steps, counts, usage, lineage and artifacts")
def get_run(run_id: RunId, request: Request, caller: CallerDep,
            if_none_match: Annotated[str | None, Header(
                max_length=8000, description="An ETag of an earlier answer: 304 if the "
                                             "run is unchanged (no steps are read).")]
            = None) -> Response:
    """Step inputs and outputs longer than the server's preview size are cut, flagged
    ``input_truncated`` / ``output_truncated``; the step route has them whole."""
    if if_none_match:
        tag = entity_tag(request, caller.ledger.revision(run_id))
        if not_modified(request, tag):
            return Response(status_code=304, headers={"ETag": tag})
    run = caller.ledger.get(run_id, preview=settings_of(request).preview_chars)
    assert run.revision is not None  # a full read carries it
    return JSONResponse(run_full(run, redactor_of(request)),
                        headers={"ETag": entity_tag(request, run.revision)})


@router.get("/runs/{run_id}/steps/{position}", response_model=StepOut, responses=ERRORS,
            summary="One step in full: input, output, error, usage")
def get_step(run_id: RunId, position: Annotated[int, Path(ge=1, le=10_000_000)],
             request: Request, caller: CallerDep) -> JSONResponse:
    step = caller.ledger.step(run_id, position)
    return JSONResponse(step_full(step, redactor_of(request)))


@router.get("/runs/{run_id}/logs", response_model=list[AttemptLogsOut], responses=ERRORS,
            summary="What the run's steps logged, attempt by attempt")
def get_logs(run_id: RunId, caller: CallerDep,
             step: Annotated[int | None, Query(ge=1, le=10_000_000, description=(
                 "Only the step at this position."))] = None) -> JSONResponse:
    """Records emitted through ``logging`` (and ``print`` where captured) while each
    step attempt ran, in step then attempt order; attempts that logged nothing are left
    out. ``truncated`` attempts kept their first records up to the bound (1,000 records
    or 256 KiB) and count the rest in ``dropped``."""
    return JSONResponse([found.to_dict() for found in caller.ledger.logs(run_id, step=step)])


# Each server-sent event as OpenAPI 3.2 describes one: its id, its type as the SSE event
# name, and the JSON data.
_SSE_EVENT = {"type": "object", "required": ["id", "event", "data"], "properties": {
    "id": {"type": "string"}, "event": {"type": "string"}, "retry": {"type": "integer"},
    "data": {"type": "string", "contentMediaType": "application/json",
             "contentSchema": EventOut.model_json_schema()}}}


@router.get("/runs/{run_id}/events", responses={
    200: {"content": {"text/event-stream": {"schema": _SSE_EVENT}},
          "description": "Server-sent events until the run ends; each event's id resumes "
                         "the stream (Last-Event-ID)."},
    **ERRORS}, response_class=StreamingResponse, summary="Live run and step transitions")
async def run_events(run_id: RunId, request: Request, caller: CallerDep,
                     last_event_id: Annotated[str | None, Header(max_length=8000)] = None,
                     after: Annotated[str | None, Query(
                         max_length=8000,
                         description="Same as the Last-Event-ID header")] = None
                     ) -> EventSourceResponse:
    """The stream ends after the run's final event. Reconnect with ``Last-Event-ID`` (or
    ``after=``) set to the last id received: you get exactly the events you missed."""
    settings = settings_of(request)
    # The first read happens before answering, so an unknown run or a bad id is a 404 or
    # 422, not a stream that fails.
    first = await run_in_threadpool(caller.ledger.events, run_id,
                                    after=last_event_id or after)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        batch = first
        while True:
            for event in batch.events:
                yield {"id": event.id, "event": event.type,
                       "data": json.dumps(event.to_dict())}
            if batch.finished or await request.is_disconnected():
                return
            await asyncio.sleep(settings.events_poll_interval)
            batch = await run_in_threadpool(caller.ledger.events, run_id,
                                            after=batch.cursor)

    return EventSourceResponse(stream(), ping=int(settings.events_ping_seconds) or None)


@router.get("/runs/{run_id}/artifacts/{key:path}", response_class=StreamingResponse,
            responses={200: {"content": {"*/*": {}},
                             "description": "The content, with its media type"}, **ERRORS},
            summary="An artifact's content")
def get_artifact(run_id: RunId, key: Annotated[str, Path(max_length=512)],
                 caller: CallerDep) -> StreamingResponse:
    info, pieces = caller.ledger.artifacts(run_id).stream(key)
    return StreamingResponse(pieces, media_type=info.media_type,
                             headers={"Content-Length": str(info.size),
                                      "ETag": f'"{info.digest}"'})


@router.post("/runs/{run_id}/resume", response_model=ActionResult, status_code=202,
             responses={200: {"model": ActionResult,
                              "description": "Already completed or pending: unchanged"},
                        **ERRORS},
             summary="Queue a failed, cancelled or paused run to resume")
def resume_run(run_id: RunId, caller: CallerDep, body: ResumeRun | None = None
               ) -> JSONResponse:
    """A worker continues it from its first unfinished step. A completed or already
    pending run is left as it is (``changed: false``)."""
    ledger = caller.ledger
    before = ledger.get(run_id, steps=False)
    queue = (body.queue if body and body.queue else None) or before.queue or DEFAULT_QUEUE
    ledger.resume(before.id, queue=queue)
    changed = before.status in (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PAUSED)
    status = RunStatus.PENDING if changed else before.status
    return JSONResponse({"id": before.id, "status": status.value, "changed": changed},
                        202 if changed else 200)


@router.post("/runs/{run_id}/pause", response_model=ActionResult, responses=ERRORS,
             summary="Pause a pending or running run")
def pause_run(run_id: RunId, caller: CallerDep, body: PauseRun | None = None
              ) -> JSONResponse:
    """A running run stops before its next step (the step in flight finishes and is
    recorded) and holds no worker; a pending one is claimed no more. ``POST
    /runs/{id}/resume`` puts it back in its queue."""
    changed = caller.ledger.pause(run_id, reason=body.reason if body else None,
                                  by=f"token {caller.token.id}")
    run = caller.ledger.get(run_id, steps=False)
    return JSONResponse({"id": run.id, "status": run.status.value, "changed": changed})


@router.post("/runs/{run_id}/cancel", response_model=ActionResult, responses=ERRORS,
             summary="Cancel a pending or running run")
def cancel_run(run_id: RunId, caller: CallerDep) -> JSONResponse:
    """The run is marked cancelled at once; its workflow stops before its next step."""
    changed = caller.ledger.cancel(run_id)
    run = caller.ledger.get(run_id, steps=False)
    return JSONResponse({"id": run.id, "status": run.status.value, "changed": changed})


@router.post("/runs/cancel", response_model=BulkResultOut, responses=ERRORS,
             summary="Cancel every unfinished run a filter matches")
def cancel_runs(body: BulkCancel, caller: CallerDep) -> JSONResponse:
    """In batches, each run with its child runs; each stops before its next step. A body
    with no filter is refused (422) unless ``all`` is true; ``dry_run`` lists the runs
    and changes nothing."""
    result = caller.ledger.cancel_runs(
        status=body.status, workflow=body.workflow, tag=body.tag, queue=body.queue,
        owner=body.owner, since=when(body.since, "since"), until=when(body.until, "until"),
        executor=body.executor, parent=body.parent, all_runs=body.all,
        dry_run=body.dry_run)
    return JSONResponse(result.to_dict())


@router.post("/runs/{run_id}/fork", response_model=RunAccepted, status_code=202,
             responses=ERRORS, summary="Queue a new run reusing steps before a position")
def fork_run(run_id: RunId, body: ForkRun, caller: CallerDep) -> JSONResponse:
    handle = caller.ledger.fork(run_id, body.from_position, body.inputs, queue=body.queue)
    run = caller.ledger.get(handle.id, steps=False)
    return JSONResponse({"id": run.id, "workflow": run.workflow, "status": run.status.value,
                         "created": True}, 202)
