"""``POST /api/v1/query``: ask and wait for the answer in one request."""

from __future__ import annotations

import structlog
from fastapi import APIRouter

from threadline_gateway.answers import answer
from threadline_gateway.deps import Caller, Settings, Starter
from threadline_gateway.run_starter import NewRun
from threadline_gateway.schemas import QueryRequest, QueryResponse

router = APIRouter(prefix="/api/v1", tags=["query"])


@router.post(
    "/query",
    response_model=QueryResponse,
    responses={
        404: {
            "description": "No such assistant (assistant_not_found) or collection (collection_not_found) for this "
            "tenant"
        },
        409: {"description": "The thread is still answering an earlier question (thread_busy)"},
        413: {"description": "Body too large"},
        503: {"description": "NATS unavailable"},
        504: {"description": "The run did not finish in time"},
    },
)
async def query(body: QueryRequest, principal: Caller, starter: Starter, settings: Settings) -> QueryResponse:
    # Started like every run, so a 504's run_id can still be joined or streamed afterwards.
    run = await starter.start(principal, NewRun.of(body), "query")
    structlog.contextvars.bind_contextvars(run_id=run.record.run_id)
    try:
        return answer(run.record, await run.outcome(settings.run_timeout_s))
    finally:
        structlog.contextvars.unbind_contextvars("run_id")
