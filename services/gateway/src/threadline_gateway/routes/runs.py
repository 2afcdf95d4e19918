"""Runs: start one in the background, look it up, wait for it, or stream its events over SSE.

Every lookup is scoped to the caller's tenant: another tenant's run is a 404, exactly like an unknown one.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, StreamingResponse

from threadline_gateway.answers import answer
from threadline_gateway.auth import Principal
from threadline_gateway.deps import Bus, Caller, Settings, Starter
from threadline_gateway.errors import ApiError, nats_errors_as_503
from threadline_gateway.run_bus import RunBus, RunRecord
from threadline_gateway.run_handle import RunHandle
from threadline_gateway.run_starter import NewRun
from threadline_gateway.schemas import QueryRequest, QueryResponse, RunCreated, RunInfo
from threadline_gateway.streaming import resume_point, sse_response

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
log = structlog.get_logger("threadline.gateway")

_THREAD_BUSY = {"description": "The thread is still answering an earlier question (thread_busy)"}
_SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "The run's events as server-sent events"},
    404: {"description": "No such run for this tenant"},
    422: {"description": "Invalid body or Last-Event-ID"},
    503: {"description": "NATS unavailable"},
}


_NO_ASSISTANT = {
    "description": "No such assistant (assistant_not_found) or collection (collection_not_found) for this tenant"
}


def _run_url(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}"


def _stream_headers(record: RunRecord) -> dict[str, str]:
    return {"Content-Location": _run_url(record.run_id)}


async def _owned(bus: RunBus, principal: Principal, run_id: str) -> RunHandle:
    """The caller's run; another tenant's is a 404, exactly like an unknown one."""
    with nats_errors_as_503():
        record = await bus.lookup(run_id, principal.tenant_id)
    if record is None:
        raise ApiError(404, "not_found", f"No run {run_id!r}.")
    return RunHandle(record, bus)


@router.post(
    "",
    status_code=202,
    response_model=RunCreated,
    responses={404: _NO_ASSISTANT, 409: _THREAD_BUSY, 503: {"description": "NATS unavailable"}},
)
async def create_run(body: QueryRequest, principal: Caller, starter: Starter) -> JSONResponse:
    """Start a run in the background; poll ``Location`` or join it with ``/wait``."""
    run = await starter.start(principal, NewRun.of(body), "background")
    created = RunCreated(**run.record.model_dump(), status="pending")
    location = _run_url(run.record.run_id)
    return JSONResponse(
        created.model_dump(mode="json"), status_code=202, headers={"Location": location, "Content-Location": location}
    )


@router.get(
    "/{run_id}",
    response_model=RunInfo,
    responses={404: {"description": "No such run for this tenant"}, 503: {"description": "NATS unavailable"}},
)
async def get_run(run_id: str, principal: Caller, bus: Bus) -> RunInfo:
    run = await _owned(bus, principal, run_id)
    with nats_errors_as_503():
        status = await bus.status(run_id)
    return RunInfo(**run.record.model_dump(), status=status)


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    response_model=RunInfo,
    responses={
        404: {"description": "No such run for this tenant"},
        409: {"description": "The run has already finished"},
        503: {"description": "NATS unavailable"},
    },
)
async def cancel_run(run_id: str, principal: Caller, bus: Bus) -> RunInfo:
    """Stop a run: at once if a worker is on it, or before it starts if it is still queued.

    Its stream then ends with an ``error`` event of code ``cancelled``; the thread keeps the steps done so far.
    """
    run = await _owned(bus, principal, run_id)
    with nats_errors_as_503():
        status = await bus.status(run_id)
        if status not in ("pending", "running"):
            raise ApiError(409, "run_finished", f"The run has already finished ({status}).")
        await bus.cancel(run_id)
    log.info("run cancel requested", run_id=run_id)
    return RunInfo(**run.record.model_dump(), status=status)


@router.get(
    "/{run_id}/wait",
    response_model=QueryResponse,
    responses={
        404: {"description": "No such run for this tenant"},
        502: {"description": "The run failed (the error names its code)"},
        503: {"description": "NATS unavailable"},
        504: {"description": "Still running; wait again or stream it"},
    },
)
async def wait_run(run_id: str, principal: Caller, bus: Bus, settings: Settings) -> QueryResponse:
    """Join a run: its answer once it ends (at once if it already has), replayed from the stored events."""
    run = await _owned(bus, principal, run_id)
    return answer(run.record, await run.outcome(settings.run_timeout_s))


@router.post(
    "/stream",
    responses=_SSE_RESPONSES | {404: _NO_ASSISTANT, 409: _THREAD_BUSY},
    response_class=StreamingResponse,
)
async def stream_new_run(
    body: QueryRequest, principal: Caller, starter: Starter, settings: Settings
) -> StreamingResponse:
    """Start a run and stream its events; ``Content-Location`` names the run for a reconnect."""
    run = await starter.start(principal, NewRun.of(body), "stream")
    return await sse_response(run, settings, headers=_stream_headers(run.record))


@router.get("/{run_id}/stream", responses=_SSE_RESPONSES, response_class=StreamingResponse)
async def stream_run(
    run_id: str,
    principal: Caller,
    bus: Bus,
    settings: Settings,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Follow a run's events: from the first, or after ``Last-Event-ID`` on a reconnect, with no gaps or repeats."""
    after = resume_point(last_event_id)
    run = await _owned(bus, principal, run_id)
    return await sse_response(
        run, settings, headers=_stream_headers(run.record), after_seq=-1 if after is None else after
    )
