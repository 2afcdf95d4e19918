"""Runs: start one in the background, look it up, wait for it, or stream its events over SSE.

Every lookup is scoped to the caller's tenant: another tenant's run is a 404, exactly like an unknown one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from threadline_gateway import sse
from threadline_gateway.errors import ApiError
from threadline_gateway.metrics import GatewayMetrics
from threadline_gateway.runs import RunBus, RunEventStream, RunRecord
from threadline_gateway.schemas import QueryRequest, QueryResponse, RunCreated, RunInfo
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.submit import (
    caller_tenant,
    final_response,
    nats_errors_as_503,
    new_run,
    record_of,
    run_timeout,
)

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
log = structlog.get_logger("threadline.gateway")

_THREAD_BUSY = {"description": "The thread is still answering an earlier question (thread_busy)"}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of a live stream
_SSE_RESPONSES = {
    200: {"content": {"text/event-stream": {}}, "description": "The run's events as server-sent events"},
    404: {"description": "No such run for this tenant"},
    422: {"description": "Invalid body or Last-Event-ID"},
    503: {"description": "NATS unavailable"},
}


def _run_url(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}"


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
    run = new_run(body, request.app.state.settings, caller_tenant(request))
    record = record_of(run)
    with nats_errors_as_503():
        await bus.remember(record)
        await bus.submit(run)
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
    run = new_run(body, request.app.state.settings, caller_tenant(request))
    record = record_of(run)
    stack = AsyncExitStack()
    try:
        with nats_errors_as_503():
            await bus.remember(record)
            # Subscribed before the run is submitted: its first event cannot be missed.
            events = await stack.enter_async_context(bus.follow(run.run_id))
            await bus.submit(run)
    except BaseException:
        await stack.aclose()
        raise
    request.app.state.metrics.run_started("stream")
    return _event_stream(request, record, events, stack, count_outcome=True)


@router.get("/{run_id}/stream", responses=_SSE_RESPONSES, response_class=StreamingResponse)
async def stream_run(
    run_id: str,
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Follow a run's events: from the first, or after ``Last-Event-ID`` on a reconnect, with no gaps or repeats."""
    try:
        after = sse.parse_last_event_id(last_event_id)
    except ValueError as exc:
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            fields=[{"field": "Last-Event-ID", "message": "must be the id of an event of this run (an integer >= 0)"}],
        ) from exc
    record = await _owned(request, run_id)
    bus: RunBus = request.app.state.bus
    stack = AsyncExitStack()
    try:
        with nats_errors_as_503():
            events = await stack.enter_async_context(bus.follow(run_id, after_seq=-1 if after is None else after))
    except BaseException:
        await stack.aclose()
        raise
    return _event_stream(request, record, events, stack, count_outcome=False)


def _event_stream(
    request: Request, record: RunRecord, events: RunEventStream, stack: AsyncExitStack, *, count_outcome: bool
) -> StreamingResponse:
    settings: GatewaySettings = request.app.state.settings
    metrics: GatewayMetrics = request.app.state.metrics

    # Counted once when the response ends, however it ends: a client that leaves mid-run is "disconnected".
    outcome = ["disconnected"]

    async def body() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + settings.run_timeout_s
        iterator = aiter(events)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                outcome[0] = "timeout"
                yield sse.gateway_frame(
                    "error",
                    {"code": "stream_timeout", "message": "The run has not ended yet; reconnect to keep following it."},
                )
                return
            try:
                event = await asyncio.wait_for(anext(iterator), timeout=min(left, settings.sse_ping_s))
            except TimeoutError:
                yield sse.PING
                continue
            except StopAsyncIteration:
                return
            yield sse.frame(event)
            if event.is_final:
                # Only once the final event is handed to the client does the run count as delivered.
                outcome[0] = "success" if event.kind == "end" else "error"
                return

    async def on_close() -> None:
        try:
            await stack.aclose()
        except Exception as exc:
            log.warning("could not release a run's event subscription", run_id=record.run_id, error=str(exc))
        if count_outcome:
            metrics.run_finished(outcome[0])

    headers = {**_SSE_HEADERS, "Content-Location": _run_url(record.run_id)}
    return _ClosingStreamingResponse(body(), on_close, media_type="text/event-stream", headers=headers)


class _ClosingStreamingResponse(StreamingResponse):
    """Releases the run's subscription however the response ends, even when the client leaves before the first byte.

    A generator's own ``finally`` would not run if Starlette cancels the response before iterating it.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]], **kwargs) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()
