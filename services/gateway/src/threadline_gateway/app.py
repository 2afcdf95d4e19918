"""The FastAPI application: middleware, routes and the lifespan that owns the NATS connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from threadline_gateway.errors import RequestContextMiddleware, install_error_handlers
from threadline_gateway.routes import health, query
from threadline_gateway.runs import RunBus
from threadline_gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bus = await RunBus.connect(settings.nats_url, settings.topology())
        try:
            yield
        finally:
            await app.state.bus.close()

    app = FastAPI(
        title="Threadline",
        version="1.0.0",
        summary="Retrieval-augmented agents, served.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(query.router)
    app.include_router(health.router)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")
    return app
