"""Liveness and readiness: the first answers "is this process alive", the second "can it serve"."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from threadline.grpc import check_health

from threadline_gateway.deps import Bus, Settings
from threadline_gateway.run_bus import RunBus

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(settings: Settings, bus: Bus) -> JSONResponse:
    """Whether this gateway can accept runs, and which parts behind it are degraded.

    Only NATS decides the status code: with NATS up a run is stored and will be worked once the
    agents, retrieval or memory are back, so taking the gateway out of a load balancer would only
    turn a slow answer into no answer. The body names every part that is down.
    """
    retrieval, memory, agents = await asyncio.gather(
        check_health(settings.retrieval_target), check_health(settings.memory_target), _agents(bus)
    )
    checks = {
        "nats": "ok" if bus.connected else "down",
        "retrieval": "ok" if retrieval else "down",
        "memory": "ok" if memory else "down",
        "agent": agents,
    }
    ready = all(v in ("ok", "busy") for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "degraded", "checks": checks},
        status_code=200 if bus.connected else 503,
    )


async def _agents(bus: RunBus) -> str:
    """ok: a worker is waiting for runs; busy: every worker is working; else none is listening."""
    try:
        waiting, working = await asyncio.wait_for(bus.workers(), timeout=2.0)
    except NotFoundError:  # the workers' consumer is created by the first worker that starts
        return "no worker is listening"
    except (NatsError, TimeoutError):
        return "unknown"
    if waiting:
        return "ok"
    return "busy" if working else "no worker is listening"
