"""The FastAPI application: middleware, routes, and the lifespan that opens (and closes) what routes depend on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import Depends, FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from threadline_gateway import langgraph_compat
from threadline_gateway import openapi as openapi_document
from threadline_gateway.apikeys import ApiKeyStore
from threadline_gateway.audit import AuditMiddleware
from threadline_gateway.auth import Authenticator
from threadline_gateway.db import Database
from threadline_gateway.deps import rate_limited
from threadline_gateway.errors import RequestContextMiddleware, install_error_handlers
from threadline_gateway.mcp import endpoint as mcp
from threadline_gateway.metrics import GatewayMetrics, MetricsMiddleware
from threadline_gateway.redaction import RedactionMiddleware
from threadline_gateway.routes import (
    assistants,
    chat,
    documents,
    erasure,
    feedback,
    health,
    openai,
    query,
    runs,
    threads,
    usage,
    ws,
)
from threadline_gateway.schemas import error_responses
from threadline_gateway.security import SecurityHeadersMiddleware, add_cors
from threadline_gateway.services import open_services
from threadline_gateway.settings import GatewaySettings

# WebSocket routes do not appear in OpenAPI, so the protocol is described here, where clients read.
API_DESCRIPTION = """
**Authentication** (when the gateway runs with `GATEWAY_AUTH=required`): `Authorization: Bearer <token>`
with a JWT (HS256 or RS256, carrying `exp` and the tenant claim) or an API key (`tl_...`), or
`X-API-Key: <key>`. The tenant comes from the credential. Failures are 401 with `WWW-Authenticate`;
another tenant's run is a 404. The WebSocket takes the credential in the handshake (`Authorization`,
`?token=`, or subprotocols `["bearer", <token>]`) and is closed with code 4001 if it is refused.

Runs stream their events (`metadata` first, then `tool_call`, `tool_result`, `token`, `citations`,
and one final `end` or `error`), each numbered by `seq` from 0.

**SSE** (`POST /api/v1/runs/stream`, `GET /api/v1/runs/{run_id}/stream`): `id:` is the event's `seq`,
`event:` its kind, `data:` its payload as JSON. Reconnect with `Last-Event-ID` to resume right after
that event; events are kept for an hour.

**OpenAI-compatible** (`/v1/models`, `/v1/chat/completions`): each assistant is a model; the last user message
is the question; a resent history continues its thread (or name it: `thread_id` / `X-Thread-Id`).

**WebSocket** (`/api/v1/ws`): send `{"type": "query", "input": ..., "thread_id"?, "assistant_id"?, "config"?,
"context"?, "ref"?}` (`input`: a question, or a graph's input as a JSON object, as on `/api/v1/runs`);
the reply is `{"type": "accepted", "ref", "run_id", "thread_id", "assistant_id"}`, then the run's events
as `{"type": "event", "run_id", "seq", "kind", "data"}`. Each query is its own run and every event names
its `run_id`, so one connection carries several runs at once (up to `GATEWAY_WS_MAX_RUNS`).
`{"type": "resume", "run_id", "after_seq"}` follows a run again after a reconnect. A bad message gets
`{"type": "error", "ref", "error": {"code", "message"}}` and the connection stays open; a message larger
than `GATEWAY_WS_MAX_MESSAGE_BYTES` closes it with code 1009.
"""


log = structlog.get_logger("threadline.gateway")


def create_app(settings: GatewaySettings) -> FastAPI:
    database = Database(settings.database_url, settings.db_timeout_s) if settings.database_url else None
    # Built here, not in the lifespan: a misconfigured key stops the gateway before it serves anything.
    authenticator = Authenticator(settings, ApiKeyStore(database) if database else None)
    metrics = GatewayMetrics()
    mcp_endpoint = mcp.McpEndpoint(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not authenticator.required:
            log.warning(
                f"AUTHENTICATION IS OFF (GATEWAY_AUTH=none): every caller acts as tenant {settings.default_tenant!r}; "
                "set GATEWAY_AUTH=required anywhere but a local machine"
            )
        await authenticator.start()  # the JWKS, read now and kept fresh
        try:
            # The MCP session manager runs inside the lifespan too, so it starts and stops with the services it uses.
            async with (
                open_services(settings, metrics, authenticator, database) as services,
                mcp_endpoint.serving(services),
            ):
                # Routes reach it through the typed dependencies of threadline_gateway.deps, never directly.
                app.state.services = services
                crons = langgraph_compat.crons.ticker(services)  # claims due crons and starts their runs
                crons.start()
                try:
                    yield
                finally:
                    await crons.stop()
        finally:
            await authenticator.close()

    app = FastAPI(
        title="Threadline",
        version="1.0.0",
        summary="Retrieval-augmented agents, served.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Innermost: by the time a response starts, authentication has put the caller's tenant in the scope.
    app.add_middleware(RedactionMiddleware, default=settings.redact_pii, tenants=settings.redact_pii_tenants)
    # Inside the request-context middleware, so each audit line carries the request id.
    app.add_middleware(AuditMiddleware)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        uploads=(documents.router.prefix, settings.max_upload_bytes),
    )
    add_cors(app, settings)
    app.add_middleware(SecurityHeadersMiddleware)
    # Added last, so outermost: it also times the 413s the request-context middleware answers itself.
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Every API route is authenticated and rate-limited; health, metrics and the docs are not.
    protected: dict[str, Any] = {
        "dependencies": [Depends(rate_limited)],
        "responses": error_responses(401, 413, 422, 429, 503),
    }
    app.include_router(query.router, **protected)
    app.include_router(runs.router, **protected)
    app.include_router(openai.router, **protected)
    app.include_router(feedback.router, **protected)
    app.include_router(documents.router, **protected)
    app.include_router(threads.router, **protected)
    app.include_router(assistants.router, **protected)
    app.include_router(erasure.router, **protected)
    app.include_router(usage.router, **protected)
    app.include_router(langgraph_compat.router, **protected)
    app.include_router(ws.router)
    # Authenticated and rate-limited by the endpoint itself, with the same code as the API routes' dependency.
    app.router.routes.append(mcp.route(mcp_endpoint))
    app.include_router(health.router)
    chat.mount(app)
    openapi_document.install(app, settings.max_input_chars)
    app.add_route("/metrics", metrics.render, include_in_schema=False)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")
    return app
