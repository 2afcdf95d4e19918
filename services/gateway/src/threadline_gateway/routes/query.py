"""``POST /api/v1/query``: ask and wait for the answer in one request."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Request

from threadline_gateway.auth import caller
from threadline_gateway.runs import RunBus, RunRecord
from threadline_gateway.schemas import QueryRequest, QueryResponse
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.submit import (
    final_response,
    nats_errors_as_503,
    new_run,
    run_timeout,
)

router = APIRouter(prefix="/api/v1", tags=["query"])
log = structlog.get_logger("threadline.gateway")


@router.post(
    "/query",
    response_model=QueryResponse,
    responses={
        409: {"description": "The thread is still answering an earlier question (thread_busy)"},
        413: {"description": "Body too large"},
        503: {"description": "NATS unavailable"},
        504: {"description": "The run did not finish in time"},
    },
)
async def query(body: QueryRequest, request: Request) -> QueryResponse:
    settings: GatewaySettings = request.app.state.settings
    bus: RunBus = request.app.state.bus
    metrics = request.app.state.metrics
    run = new_run(body, settings, caller(request))
    record = RunRecord.of(run)
    structlog.contextvars.bind_contextvars(run_id=run.run_id)
    try:
        with nats_errors_as_503():
            # Remembered like every run, so a 504's run_id can still be joined or streamed afterwards.
            await bus.start(run, body.multitask_strategy)
            async with bus.follow(run.run_id) as events:
                metrics.run_started("query")
                final = await asyncio.wait_for(events.final(), timeout=settings.run_timeout_s)
    except TimeoutError as exc:
        metrics.run_finished("timeout")
        raise run_timeout(settings, record) from exc
    finally:
        structlog.contextvars.unbind_contextvars("run_id")
    metrics.run_finished("success" if final.kind == "end" else "error")
    return final_response(record, final)
