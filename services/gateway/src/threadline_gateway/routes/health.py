"""Liveness and readiness: the first answers "is this process alive", the second "can it serve"."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from nats.js.errors import NotFoundError
from threadline.grpc import check_health

from threadline_gateway.runs import RunBus
from threadline_gateway.settings import GatewaySettings

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """503 with the parts that are down, so an orchestrator holds traffic back and an operator sees why."""
    settings: GatewaySettings = request.app.state.settings
    bus: RunBus = request.app.state.bus
    retrieval, memory, agents = await asyncio.gather(
        check_health(settings.retrieval_target), check_health(settings.memory_target), _agents(bus)
    )
    checks = {
        "nats": "ok" if bus.connected else "down",
        "retrieval": "ok" if retrieval else "down",
        "memory": "ok" if memory else "down",
        "agent": "ok" if agents else "no worker is listening",
    }
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "degraded", "checks": checks}, status_code=200 if ready else 503
    )


async def _agents(bus: RunBus) -> bool:
    try:
        return await asyncio.wait_for(bus.waiting_workers(), timeout=2.0) > 0
    except (NotFoundError, TimeoutError):
        return False
