"""The audit line of each MCP request: who (tenant, credential) called which method on what, and how it ended.

The HTTP request that carried it has its own line from :class:`threadline_gateway.audit.AuditMiddleware`
(refusals included); this one says what a ``POST /mcp`` did, which the route alone cannot.
"""

from __future__ import annotations

import time
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from threadline_gateway.audit import audit_log


class McpAuditMiddleware:
    """An SDK server middleware (``Server.middleware``): it wraps every request, notifications aside."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:
            return await call_next(ctx)
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await call_next(ctx)
            outcome = "tool_error" if _is_tool_error(result) else "ok"
            return result
        except MCPError as exc:
            outcome = f"error {exc.code}"
            raise
        finally:
            params = ctx.params or {}
            principal = getattr(getattr(ctx.request, "state", None), "principal", None)
            audit_log.info(
                "mcp request",
                method=ctx.method,
                target=params.get("name") or params.get("uri"),
                outcome=outcome,
                duration_ms=round((time.perf_counter() - start) * 1000, 1),
                tenant=principal.tenant_id if principal else "",
                subject=principal.subject if principal else "unauthenticated",
            )


def _is_tool_error(result: HandlerResult) -> bool:
    if isinstance(result, CallToolResult):
        return bool(result.is_error)
    return isinstance(result, dict) and bool(result.get("isError"))
