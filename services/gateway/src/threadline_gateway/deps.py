"""What a route may depend on, as FastAPI dependencies with typed ``Annotated`` aliases.

A route names what it uses (``bus: Bus``, ``principal: Caller``) instead of reading the application's state.
The providers take the connection, HTTP or WebSocket, so WebSocket routes use the same aliases.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection
from threadline.retrieval.v1.retrieval_pb2_grpc import RetrievalServiceStub

from threadline_gateway import ratelimit
from threadline_gateway.auth import Authenticator, Principal
from threadline_gateway.chat_threads import ChatThreads
from threadline_gateway.crons import CronStore
from threadline_gateway.db import Database
from threadline_gateway.ingests import IngestBus
from threadline_gateway.memory import Memory
from threadline_gateway.ratelimit import Limiter
from threadline_gateway.run_bus import RunBus
from threadline_gateway.run_starter import RunStarter
from threadline_gateway.services import Services
from threadline_gateway.settings import GatewaySettings


# The providers are async only so FastAPI calls them on the event loop, not each in a worker thread.
async def _services(connection: HTTPConnection) -> Services:
    # The one read of the application's state: the lifespan puts the services there before the first request.
    services: Services = connection.app.state.services
    return services


AppServices = Annotated[Services, Depends(_services)]


async def _settings(services: AppServices) -> GatewaySettings:
    return services.settings


async def _authenticator(services: AppServices) -> Authenticator:
    return services.authenticator


async def _limiter(services: AppServices) -> Limiter:
    return services.limiter


async def _database(services: AppServices) -> Database | None:
    return services.database


async def _bus(services: AppServices) -> RunBus:
    return services.bus


async def _starter(services: AppServices) -> RunStarter:
    return services.starter


async def _ingests(services: AppServices) -> IngestBus:
    return services.ingests


async def _retrieval(services: AppServices) -> RetrievalServiceStub:
    return services.retrieval


async def _memory(services: AppServices) -> Memory:
    return services.memory


async def _chat_threads(services: AppServices) -> ChatThreads:
    return services.chat_threads


async def _crons(services: AppServices) -> CronStore:
    return services.crons


Settings = Annotated[GatewaySettings, Depends(_settings)]
Auth = Annotated[Authenticator, Depends(_authenticator)]
RateLimiter = Annotated[Limiter, Depends(_limiter)]
Db = Annotated[Database | None, Depends(_database)]
Bus = Annotated[RunBus, Depends(_bus)]
Starter = Annotated[RunStarter, Depends(_starter)]
Ingests = Annotated[IngestBus, Depends(_ingests)]
Retrieval = Annotated[RetrievalServiceStub, Depends(_retrieval)]
MemoryClient = Annotated[Memory, Depends(_memory)]
Chats = Annotated[ChatThreads, Depends(_chat_threads)]
Crons = Annotated[CronStore, Depends(_crons)]

_bearer = HTTPBearer(auto_error=False, description="A JWT (HS256 or RS256), or an API key (`tl_...`).")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (`tl_...`).")


async def _authenticated(
    connection: HTTPConnection,
    authenticator: Auth,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> Principal:
    principal = await authenticator.authenticate(bearer.credentials if bearer else api_key)
    # Kept on the connection too, for the audit log, which reads it from the ASGI scope.
    connection.state.principal = principal
    structlog.contextvars.bind_contextvars(tenant=principal.tenant_id, subject=principal.subject)
    return principal


# Resolved once per request (FastAPI caches a dependency), so a route sees the principal its limits counted.
Caller = Annotated[Principal, Depends(_authenticated)]


async def rate_limited(principal: Caller, limiter: RateLimiter, settings: Settings) -> Principal:
    """The dependency of every API router: authenticate, then count the request against the caller's limits."""
    await ratelimit.check(limiter, principal, settings)
    return principal
