"""``/mcp``: the MCP server over Streamable HTTP, behind the same authentication and rate limits as the REST API.

The SDK's session manager runs **stateless, with JSON responses**: each POST carries one whole
request and gets one whole answer, and nothing of a client is kept between requests. So any
gateway replica behind the load balancer can serve any request (no sticky sessions, no session
store), a replica can stop without dropping anyone's session, and a client that moves between
replicas never sees "session not found". What stateful mode would add (server-to-client requests,
resumable SSE streams) no tool here needs: a tool answers when its run has ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from threadline_gateway import ratelimit
from threadline_gateway.errors import ApiError, error_body
from threadline_gateway.mcp.server import build_server
from threadline_gateway.security import cors_origins
from threadline_gateway.services import Services
from threadline_gateway.settings import GatewaySettings

PATH = "/mcp"


class McpEndpoint:
    """The ASGI endpoint at :data:`PATH`; it serves while :meth:`serving` is entered (in the app's lifespan)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        # A browser page may call only from an origin the gateway allows for CORS: the MCP spec's defence against
        # DNS rebinding, where a page's own origin names the attacker's host.
        self.origins = frozenset(cors_origins(settings))
        self._serving: tuple[Services, StreamableHTTPSessionManager] | None = None

    @asynccontextmanager
    async def serving(self, services: Services) -> AsyncIterator[None]:
        """Run the SDK's session manager (a manager runs once, so each lifespan makes its own) until the block ends."""
        manager = StreamableHTTPSessionManager(
            build_server(services),
            stateless=True,
            json_response=True,
            max_request_body_size=self.settings.max_body_bytes,
        )
        async with manager.run():
            self._serving = services, manager
            try:
                yield
            finally:
                self._serving = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            services, manager = self._admit()
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and origin not in self.origins:
                raise ApiError(403, "origin_not_allowed", f"Requests from {origin[:100]!r} are not allowed.")
            principal = await services.authenticator.authenticate(_credential(headers))
            # Where the REST dependencies keep it: the audit log and the MCP handlers read it from the ASGI scope.
            scope.setdefault("state", {})["principal"] = principal
            structlog.contextvars.bind_contextvars(tenant=principal.tenant_id, subject=principal.subject)
            await ratelimit.check(services.limiter, principal, services.settings)
        except ApiError as exc:
            request_id = scope.get("state", {}).get("request_id", "")
            response = JSONResponse(
                error_body(request_id, exc.code, exc.message, exc.details or None), exc.status, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)

    def _admit(self) -> tuple[Services, StreamableHTTPSessionManager]:
        if self._serving is None:  # before the lifespan has started, or after it has ended
            raise ApiError(503, "unavailable", "The MCP server is not running.", headers={"Retry-After": "2"})
        return self._serving


def route(endpoint: McpEndpoint) -> Route:
    """The route of ``endpoint`` at :data:`PATH`."""
    return _Route(PATH, endpoint, include_in_schema=False)


class _Route(Route):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Recorded as Starlette's router does (FastAPI's records only its own routes), so the audit line
        # and the request metrics name the route "/mcp", not "unmatched".
        scope["route"] = self
        await super().handle(scope, receive, send)


def _credential(headers: Headers) -> str | None:
    """As the REST API reads it: ``Authorization: Bearer <token or key>``, else ``X-API-Key``."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key")
