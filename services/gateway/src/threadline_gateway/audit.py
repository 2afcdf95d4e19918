"""The audit log: one line per API call saying who (tenant, credential) did what (method, route, run) and how it ended.

Written to the ``threadline.gateway.audit`` logger, so a deployment can route it apart from
the service's other logs. Never the credential itself, never a request body.
"""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline_gateway.route_template import route_template

audit_log = structlog.get_logger("threadline.gateway.audit")

AUDITED_PREFIXES = ("/api/", "/v1/", "/langgraph/", "/mcp")


def who(scope: Scope) -> dict[str, str]:
    principal = scope.get("state", {}).get("principal")
    if principal is None:  # refused before authentication succeeded
        return {"tenant": "", "subject": "unauthenticated"}
    return {"tenant": principal.tenant_id, "subject": principal.subject}


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(AUDITED_PREFIXES) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = route_template(scope)
            audit_log.info(
                "api call",
                method=scope["method"],
                route=route,
                run_id=scope.get("path_params", {}).get("run_id"),
                status=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 1),
                **who(scope),
            )
