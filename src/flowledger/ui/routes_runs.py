"""The runs list and a run's page: timeline, steps, step panel, live updates, actions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sse_starlette import EventSourceResponse

from ..errors import ConfigurationError, RunNotFound
from ..http.params import entity_tag, not_modified
from ..models import Run, RunStatus
from ..queueing import DEFAULT_QUEUE
from .common import acting_viewer, render, viewer_of
from .timeline import timeline_of

router = APIRouter()

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}
STEP_PAGE = 500
RunId = Annotated[str, Path(max_length=64)]
_STATUSES = [s.value for s in RunStatus]


def _filters(request: Request) -> dict[str, Any]:
    """The runs list's filters from the URL (so a view is a link, and Back works)."""
    query = request.query_params
    status = [s for s in query.getlist("status") if s in _STATUSES]
    since = query.get("since") or ""
    return {"status": status, "workflow": (query.get("workflow") or "").strip()[:200],
            "queue": (query.get("queue") or "").strip()[:200],
            "tag": (query.get("tag") or "").strip()[:200],
            "owner": (query.get("owner") or "").strip()[:200],
            "since": since if since in WINDOWS else "",
            "id": (query.get("id") or "").strip()[:64],
            "cursor": (query.get("cursor") or "").strip()[:64]}


def _listing(filters: dict[str, Any], admin: bool) -> dict[str, Any]:
    return {"status": filters["status"] or None, "workflow": filters["workflow"] or None,
            "queue": filters["queue"] or None, "tag": filters["tag"] or None,
            "owner": (filters["owner"] or None) if admin else None,
            "since": WINDOWS.get(filters["since"]), "limit": 50,
            "cursor": filters["cursor"] or None}


def _query(filters: dict[str, Any], **changes: Any) -> str:
    values = {**filters, **changes}
    pairs = [("status", s) for s in values["status"]]
    pairs += [(k, v) for k, v in values.items() if k != "status" and v]
    return urlencode(pairs)


def _etag(request: Request, revision: str) -> str:
    """The API's entity tag, marked as the UI's (its rows are HTML, not JSON)."""
    return entity_tag(request, f"{revision}.ui")


@router.get("/runs")
def runs_page(request: Request) -> Response:
    viewer = viewer_of(request)
    filters = _filters(request)
    notice = None
    if filters["id"]:
        try:
            found = viewer.ledger.get(filters["id"], steps=False)
            return RedirectResponse(f"{request.scope.get('root_path', '')}/runs/{found.id}",
                                    303)
        except RunNotFound:
            notice = f"No run has an id starting with {filters['id']!r}."
        except ConfigurationError as exc:
            notice = str(exc)
    page = viewer.ledger.summaries(**_listing(filters, viewer.admin))
    return render(request, "runs.html", viewer=viewer, page=page, filters=filters,
                  statuses=_STATUSES, windows=list(WINDOWS), notice=notice,
                  query=_query(filters, cursor=""), next_query=(
                      _query(filters, cursor=page.next_cursor) if page.next_cursor
                      else None), etag=_etag(request, page.revision))


@router.get("/runs/rows")
def runs_rows(request: Request) -> Response:
    """The list's rows alone, for polling: 304 while the page is unchanged (one light
    query), so an open runs page costs the server next to nothing."""
    viewer = viewer_of(request)
    filters = _filters(request)
    listing = _listing(filters, viewer.admin)
    if request.headers.get("if-none-match"):
        tag = _etag(request, viewer.ledger.summaries_revision(**listing))
        if not_modified(request, tag):
            return Response(status_code=304, headers={"ETag": tag})
    page = viewer.ledger.summaries(**listing)
    return render(request, "_runs_rows.html", viewer=viewer, page=page,
                  headers={"ETag": _etag(request, page.revision),
                           "Cache-Control": "no-cache"})


def _run_view(request: Request, run: Run, step_from: int) -> dict[str, Any]:
    steps = run.steps[step_from - 1: step_from - 1 + STEP_PAGE]
    children = [s for s in run.steps if s.child_run_id]
    return {"run": run, "steps": steps, "step_from": step_from,
            "step_count": len(run.steps), "step_page": STEP_PAGE, "children": children,
            "timeline": json.dumps(timeline_of(run), separators=(",", ":")),
            "redact": request.app.state.redact,
            "finished": run.status in (RunStatus.COMPLETED, RunStatus.FAILED,
                                       RunStatus.CANCELLED)}


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: RunId,
             steps_from: Annotated[int, Query(ge=1, le=10_000_000)] = 1) -> Response:
    viewer = viewer_of(request)
    run = viewer.ledger.get(run_id, preview=request.app.state.settings.preview_chars)
    return render(request, "run.html", viewer=viewer, **_run_view(request, run, steps_from))


@router.get("/runs/{run_id}/parts")
def run_parts(request: Request, run_id: RunId,
              steps_from: Annotated[int, Query(ge=1, le=10_000_000)] = 1) -> Response:
    """What changes on a live run page, swapped in place by htmx (out of band): the
    header, the steps table and the timeline's data, in one answer."""
    viewer = viewer_of(request)
    run = viewer.ledger.get(run_id, preview=request.app.state.settings.preview_chars)
    return render(request, "_run_parts.html", viewer=viewer,
                  **_run_view(request, run, steps_from))


@router.get("/runs/{run_id}/live")
async def run_live(request: Request, run_id: RunId,
                   revision: Annotated[str | None, Query(max_length=200)] = None
                   ) -> EventSourceResponse:
    """An event stream that says ``changed`` whenever the run's revision moves from
    ``revision`` (the one the page shows; one indexed read per poll, no steps read) and
    ``end`` once the run is finished."""
    viewer = viewer_of(request)
    ledger = viewer.ledger
    every = request.app.state.live_poll_seconds
    # From the page's revision, not the current one: a change between rendering the
    # page and opening the stream (the run's end, say) is still announced.
    seen = revision or await run_in_threadpool(ledger.revision, run_id)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        nonlocal seen
        while not await request.is_disconnected():
            await asyncio.sleep(every)
            now = await run_in_threadpool(ledger.revision, run_id)
            if now != seen:
                seen = now
                yield {"event": "changed", "data": now}
                run = await run_in_threadpool(lambda: ledger.get(run_id, steps=False))
                if run.status in (RunStatus.COMPLETED, RunStatus.FAILED,
                                  RunStatus.CANCELLED):
                    yield {"event": "end", "data": run.status.value}
                    return

    return EventSourceResponse(stream(), ping=15)


@router.get("/runs/{run_id}/timeline.json")
def run_timeline(request: Request, run_id: RunId) -> JSONResponse:
    """A run's timeline data (child runs' timelines are fetched when expanded)."""
    viewer = viewer_of(request)
    return JSONResponse(timeline_of(viewer.ledger.get(run_id, preview=256)))


@router.get("/runs/{run_id}/steps/{position}")
def step_panel(request: Request, run_id: RunId,
               position: Annotated[int, Path(ge=1, le=10_000_000)],
               full: Annotated[bool, Query()] = False) -> Response:
    """The step panel: input, output (previews unless ``full``), error, attempts,
    LLM calls, what each attempt logged, and the idempotency key."""
    viewer = viewer_of(request)
    step = viewer.ledger.step(run_id, position)
    limit = None if full else request.app.state.settings.preview_chars
    redact = request.app.state.redact
    values = {}
    for field in ("input", "output"):
        shown = redact(getattr(step, field))
        text = json.dumps(shown, indent=2, default=str, ensure_ascii=False)
        cut = limit is not None and len(text) > limit
        values[field] = {"value": None if cut else shown,
                         "text": text[:limit] if cut else text, "cut": cut,
                         "size": len(text)}
    return render(request, "_step_panel.html", viewer=viewer, step=step, values=values,
                  run_id=step.run_id, logs=viewer.ledger.logs(run_id, step=position))


@router.get("/runs/{run_id}/artifacts/{key:path}")
def artifact(request: Request, run_id: RunId, key: Annotated[str, Path(max_length=512)],
             download: Annotated[bool, Query()] = False) -> StreamingResponse:
    viewer = viewer_of(request)
    info, pieces = viewer.ledger.artifacts(run_id).stream(key)
    headers = {"Content-Length": str(info.size), "X-Content-Type-Options": "nosniff",
               # An artifact is data, never a page of this site that could run scripts.
               "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'"}
    if download or not (info.media_type.startswith(("text/", "image/"))
                        or info.media_type == "application/json"):
        name = key.rsplit("/", 1)[-1].replace('"', "")
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return StreamingResponse(pieces, media_type=info.media_type, headers=headers)


def _done(request: Request, run_id: str, message: str) -> Response:
    """After an action: back to the run page, with what happened."""
    target = f"{request.scope.get('root_path', '')}/runs/{run_id}?{urlencode({'done': message})}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, 303)


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: RunId) -> Response:
    viewer, _form = await acting_viewer(request)
    run = await run_in_threadpool(viewer.ledger.get, run_id, steps=False)
    changed = await run_in_threadpool(viewer.ledger.cancel, run.id)
    return _done(request, run.id, "Cancelled." if changed else
                 f"Nothing to cancel: the run is {run.status.value}.")


@router.post("/runs/{run_id}/pause")
async def pause(request: Request, run_id: RunId) -> Response:
    viewer, _form = await acting_viewer(request)
    run = await run_in_threadpool(viewer.ledger.get, run_id, steps=False)
    changed = await run_in_threadpool(
        lambda: viewer.ledger.pause(run.id, by=f"ui {viewer.label}"))
    return _done(request, run.id, "Paused: it stops before its next step." if changed
                 else f"Nothing to pause: the run is {run.status.value}.")


@router.post("/runs/{run_id}/events")
async def send_event(request: Request, run_id: RunId) -> Response:
    viewer, form = await acting_viewer(request)
    run = await run_in_threadpool(viewer.ledger.get, run_id, steps=False)
    name = form.get("name", "")
    text = form.get("payload", "")
    try:
        payload = json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"the payload is not valid JSON: {exc}") from None
    await run_in_threadpool(viewer.ledger.send_event, run.id, name, payload)
    return _done(request, run.id, f"Sent event {name!r}.")


@router.post("/runs/{run_id}/resume")
async def resume(request: Request, run_id: RunId) -> Response:
    viewer, _form = await acting_viewer(request)
    run = await run_in_threadpool(viewer.ledger.get, run_id, steps=False)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PAUSED):
        return _done(request, run.id, f"Nothing to resume: the run is {run.status.value}.")
    queue = run.queue or DEFAULT_QUEUE
    await run_in_threadpool(lambda: viewer.ledger.resume(run.id, queue=queue))
    return _done(request, run.id, f"Resumed: queued on {queue!r} for a worker to continue "
                                  "from its first unfinished step.")


def _inputs(text: str | None) -> dict[str, Any] | None:
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"the inputs are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError("the inputs must be a JSON object of parameter names")
    return value


@router.post("/runs/{run_id}/fork")
async def fork(request: Request, run_id: RunId) -> Response:
    """A new run reusing the steps before ``position`` (inputs optionally changed);
    ``position`` 1 with the same inputs is a re-run."""
    viewer, form = await acting_viewer(request)
    try:
        position = int(form.get("position", "1"))
    except ValueError:
        raise ConfigurationError("the fork position must be a step number") from None
    inputs = _inputs(form.get("inputs"))
    source = await run_in_threadpool(viewer.ledger.get, run_id, steps=False)
    handle = await run_in_threadpool(lambda: viewer.ledger.fork(
        source.id, position, inputs, queue=source.queue or DEFAULT_QUEUE))
    what = "Re-run" if position == 1 and inputs is None else f"Fork from step {position}"
    return _done(request, handle.id, f"{what} of {source.id[:13]} queued on "
                                     f"{source.queue or DEFAULT_QUEUE!r}.")
