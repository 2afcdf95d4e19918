"""Runs: start one in the background, look it up, wait for it, or stream its events over SSE.

Every lookup is scoped to the caller's tenant: another tenant's run is a 404, exactly like an unknown one.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from threadline_gateway.auth import caller
from threadline_gateway.errors import ApiError
from threadline_gateway.runs import RunBus, RunRecord
from threadline_gateway.schemas import QueryRequest, QueryResponse, RunCreated, RunInfo
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.streaming import resume_point, sse_response
from threadline_gateway.submit import (
    caller_tenant,
    final_response,
    nats_errors_as_503,
    new_run,
    run_timeout,
)

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
log = structlog.get_logger("threadline.gateway")

_THREAD_BUSY = {"description": "The thread is still answering an earlier question (thread_busy)"}
_SSE_RESPONSES = {
    200: {"content": {"text/event-stream": {}}, "description": "The run's events as server-sent events"},
    404: {"description": "No such run for this tenant"},
    422: {"description": "Invalid body or Last-Event-ID"},
    503: {"description": "NATS unavailable"},
}


def _run_url(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}"


def _stream_headers(record: RunRecord) -> dict[str, str]:
    return {"Content-Location": _run_url(record.run_id)}


async def _owned(request: Request, run_id: str) -> RunRecord:
    bus: RunBus = request.app.state.bus
    with nats_errors_as_503():
        record = await bus.lookup(run_id, caller_tenant(request))
    if record is None:
        raise ApiError(404, "not_found", f"No run {run_id!r}.")
    return record


@router.post(
    "",
    status_code=202,
    response_model=RunCreated,
    responses={409: _THREAD_BUSY, 503: {"description": "NATS unavailable"}},
)
async def create_run(body: QueryRequest, request: Request) -> JSONResponse:
    """Start a run in the background; poll ``Location`` or join it with ``/wait``."""
    bus: RunBus = request.app.state.bus
    run = new_run(body, request.app.state.settings, caller(request))
    record = RunRecord.of(run, body.multitask_strategy)
    with nats_errors_as_503():
        await bus.start(run, body.multitask_strategy)
    request.app.state.metrics.run_started("background")
    created = RunCreated(**record.model_dump(), status="pending")
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=202,
        headers={"Location": _run_url(run.run_id), "Content-Location": _run_url(run.run_id)},
    )


@router.get(
    "/{run_id}",
    response_model=RunInfo,
    responses={404: {"description": "No such run for this tenant"}, 503: {"description": "NATS unavailable"}},
)
async def get_run(run_id: str, request: Request) -> RunInfo:
    record = await _owned(request, run_id)
    with nats_errors_as_503():
        status = await request.app.state.bus.status(run_id)
    return RunInfo(**record.model_dump(), status=status)


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
async def cancel_run(run_id: str, request: Request) -> RunInfo:
    """Stop a run: at once if a worker is on it, or before it starts if it is still queued.

    Its stream then ends with an ``error`` event of code ``cancelled``; the thread keeps the steps done so far.
    """
    bus: RunBus = request.app.state.bus
    record = await _owned(request, run_id)
    with nats_errors_as_503():
        status = await bus.status(run_id)
        if status not in ("pending", "running"):
            raise ApiError(409, "run_finished", f"The run has already finished ({status}).")
        await bus.cancel(run_id)
    log.info("run cancel requested", run_id=run_id)
    return RunInfo(**record.model_dump(), status=status)


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
async def wait_run(run_id: str, request: Request) -> QueryResponse:
    """Join a run: its answer once it ends (at once if it already has), replayed from the stored events."""
    settings: GatewaySettings = request.app.state.settings
    bus: RunBus = request.app.state.bus
    record = await _owned(request, run_id)
    try:
        with nats_errors_as_503():
            async with bus.follow(run_id) as events:
                final = await asyncio.wait_for(events.final(), timeout=settings.run_timeout_s)
    except TimeoutError as exc:
        raise run_timeout(settings, record) from exc
    return final_response(record, final)


@router.post(
    "/stream",
    responses={k: v for k, v in _SSE_RESPONSES.items() if k != 404} | {409: _THREAD_BUSY},
    response_class=StreamingResponse,
)
async def stream_new_run(body: QueryRequest, request: Request) -> StreamingResponse:
    """Start a run and stream its events; ``Content-Location`` names the run for a reconnect."""
    bus: RunBus = request.app.state.bus
    run = new_run(body, request.app.state.settings, caller(request))
    record = RunRecord.of(run, body.multitask_strategy)
    stack = AsyncExitStack()
    try:
        with nats_errors_as_503():
            await bus.start(run, body.multitask_strategy)
            events = await stack.enter_async_context(bus.follow(run.run_id))
    except BaseException:
        await stack.aclose()
        raise
    request.app.state.metrics.run_started("stream")
    return sse_response(request, record, events, stack, count_outcome=True, headers=_stream_headers(record))


@router.get("/{run_id}/stream", responses=_SSE_RESPONSES, response_class=StreamingResponse)
async def stream_run(
    run_id: str,
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Follow a run's events: from the first, or after ``Last-Event-ID`` on a reconnect, with no gaps or repeats."""
    after = resume_point(last_event_id)
    record = await _owned(request, run_id)
    bus: RunBus = request.app.state.bus
    stack = AsyncExitStack()
    try:
        with nats_errors_as_503():
            events = await stack.enter_async_context(bus.follow(run_id, after_seq=-1 if after is None else after))
    except BaseException:
        await stack.aclose()
        raise
    return sse_response(request, record, events, stack, count_outcome=False, headers=_stream_headers(record))
