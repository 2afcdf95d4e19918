"""``POST /api/v1/query``: ask and wait for the answer in one request."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from fastapi import APIRouter, Request
from nats.errors import Error as NatsError
from threadline.events import RunRequested

from threadline_gateway.errors import ApiError
from threadline_gateway.runs import RunBus
from threadline_gateway.schemas import QueryRequest, QueryResponse
from threadline_gateway.settings import GatewaySettings

router = APIRouter(prefix="/api/v1", tags=["query"])
log = structlog.get_logger("threadline.gateway")

_ERROR_STATUS = {"invalid_input": 422, "assistant_not_found": 404}


@router.post(
    "/query",
    response_model=QueryResponse,
    responses={
        413: {"description": "Body too large"},
        503: {"description": "NATS unavailable"},
        504: {"description": "The run did not finish in time"},
    },
)
async def query(body: QueryRequest, request: Request) -> QueryResponse:
    settings: GatewaySettings = request.app.state.settings
    bus: RunBus = request.app.state.bus
    text = body.input.strip()
    if not text:
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            fields=[{"field": "input", "message": "must not be blank"}],
        )
    if len(text) > settings.max_input_chars:
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            fields=[{"field": "input", "message": f"at most {settings.max_input_chars} characters"}],
        )
    run = RunRequested(
        run_id=str(uuid.uuid4()),
        thread_id=body.thread_id or str(uuid.uuid4()),
        tenant_id=settings.default_tenant,
        assistant_id=body.assistant_id,
        input=text,
    )
    structlog.contextvars.bind_contextvars(run_id=run.run_id)
    try:
        async with bus.follow(run.run_id) as events:
            await bus.submit(run)
            final = await asyncio.wait_for(events.final(), timeout=settings.run_timeout_s)
    except (NatsError, ConnectionError, OSError) as exc:
        log.warning("nats unavailable", error=str(exc))
        raise ApiError(
            503, "unavailable", "The message bus is unavailable; try again shortly.", headers={"Retry-After": "2"}
        ) from exc
    except TimeoutError as exc:
        raise ApiError(
            504,
            "run_timeout",
            f"The run did not finish within {settings.run_timeout_s:g} s; it goes on in the background.",
            run_id=run.run_id,
            thread_id=run.thread_id,
        ) from exc
    finally:
        structlog.contextvars.unbind_contextvars("run_id")
    if final.kind == "error":
        code = str(final.data.get("code", "run_failed"))
        raise ApiError(
            _ERROR_STATUS.get(code, 502), code, str(final.data.get("message", "The run failed.")), run_id=run.run_id
        )
    data = final.data
    return QueryResponse(
        run_id=run.run_id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        answer=data.get("answer", ""),
        citations=data.get("citations", []),
        model=data.get("model"),
        usage=data.get("usage") or {},
    )
