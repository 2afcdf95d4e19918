"""The SDK's MCP server wired to the gateway: its tools, resources and audit, for the caller the endpoint admitted.

Every handler acts for the principal :class:`~threadline_gateway.mcp.endpoint.McpEndpoint` put on the
request (as the REST dependencies do), so a tenant only ever reaches its own documents and assistants.
Errors reach the client as MCP errors with a message, never a traceback: a tool's failure is its
result with ``isError`` (the model reads it and can try again), a resource's failure a JSON-RPC error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import structlog
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    TextContent,
)
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from threadline_gateway.auth import Principal
from threadline_gateway.errors import ApiError
from threadline_gateway.mcp import assistants, resources, tools
from threadline_gateway.mcp.audit import McpAuditMiddleware
from threadline_gateway.memory import Assistant
from threadline_gateway.services import Services

log = structlog.get_logger("threadline.gateway")
Context = ServerRequestContext[Any, Request]

INSTRUCTIONS = (
    "Threadline serves retrieval-augmented assistants over your own documents. Search the knowledge base "
    f"({tools.SEARCH}), list and read its documents ({tools.LIST_DOCUMENTS}, {tools.GET_DOCUMENT}, or the "
    "document resources), or ask one of the assistants, each a tool of its own: it answers with citations."
)


def build_server(services: Services) -> Server[Any]:
    handlers = _Handlers(services)
    server: Server[Any] = Server(
        "threadline",
        version=version("threadline-gateway"),
        title="Threadline",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=_input_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_resource_templates,
        on_read_resource=handlers.read_resource,
    )
    server.middleware.append(McpAuditMiddleware())
    return server


def caller(ctx: Context) -> Principal:
    """Who is calling: the principal the endpoint authenticated, kept on the request's state."""
    principal = getattr(ctx.request.state, "principal", None) if ctx.request is not None else None
    if not isinstance(principal, Principal):  # only reachable if the endpoint were bypassed
        raise MCPError(INTERNAL_ERROR, "The request was not authenticated.")
    return principal


def _input_schema(name: str) -> dict[str, Any]:
    """A tool's input schema without a listing (the SDK checks ``Mcp-Param-*`` headers with it)."""
    return next((t.input_schema for t in tools.KNOWLEDGE_TOOLS if t.name == name), assistants.INPUT_SCHEMA)


class _Handlers:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def list_tools(self, ctx: Context, params: PaginatedRequestParams | None) -> ListToolsResult:
        with _as_mcp_errors():
            try:
                found = await self._assistants(caller(ctx))
            except ApiError as exc:
                if exc.status != 503:
                    raise
                # The knowledge base may still answer: its tools stay usable while the assistants cannot be listed.
                log.warning("assistants unavailable; listing the knowledge tools only", error=exc.message)
                found = {}
        return ListToolsResult(tools=[*tools.KNOWLEDGE_TOOLS, *(assistants.tool(name, a) for name, a in found.items())])

    async def call_tool(self, ctx: Context, params: CallToolRequestParams) -> CallToolResult:
        principal = caller(ctx)
        arguments = params.arguments or {}
        try:
            with _unexpected_as_mcp_error():
                if tools.is_knowledge_tool(params.name):
                    result = await tools.run_knowledge_tool(
                        params.name, arguments, self.services.retrieval, principal.tenant_id
                    )
                else:
                    assistant = (await self._assistants(principal)).get(params.name)
                    if assistant is None:
                        raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name!r}; list the tools to see them.")
                    result = await assistants.ask(
                        self.services.starter, principal, assistant, arguments, self.services.settings.run_timeout_s
                    )
        except ValidationError as exc:
            return _tool_error(_invalid_arguments(exc))
        except ApiError as exc:
            return _tool_error(_message(exc))
        return CallToolResult(
            content=[TextContent(type="text", text=_text(result))], structured_content=result.model_dump(mode="json")
        )

    async def list_resources(self, ctx: Context, params: PaginatedRequestParams | None) -> ListResourcesResult:
        with _as_mcp_errors():
            page, following = await resources.list_page(
                self.services.retrieval, caller(ctx).tenant_id, params.cursor if params else None
            )
        return ListResourcesResult(resources=page, next_cursor=following)

    async def list_resource_templates(
        self, ctx: Context, params: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(resource_templates=[resources.TEMPLATE])

    async def read_resource(self, ctx: Context, params: ReadResourceRequestParams) -> ReadResourceResult:
        with _as_mcp_errors():
            contents = await resources.read(self.services.retrieval, caller(ctx).tenant_id, params.uri)
        return ReadResourceResult(contents=[contents])

    async def _assistants(self, principal: Principal) -> dict[str, Assistant]:
        reserved = {t.name for t in tools.KNOWLEDGE_TOOLS}
        return await assistants.assistant_tools(self.services.memory, principal.tenant_id, reserved)


@contextmanager
def _as_mcp_errors() -> Iterator[None]:
    """The gateway's errors as JSON-RPC errors: the caller's mistakes as invalid params, the rest as internal."""
    with _unexpected_as_mcp_error():
        try:
            yield
        except ApiError as exc:
            raise MCPError(INVALID_PARAMS if exc.status < 500 else INTERNAL_ERROR, _message(exc)) from exc


@contextmanager
def _unexpected_as_mcp_error() -> Iterator[None]:
    """A bug is logged here with its traceback; the client gets an error without it."""
    try:
        yield
    except (MCPError, ApiError, ValidationError):
        raise
    except Exception as exc:
        log.exception("mcp handler failed")
        raise MCPError(INTERNAL_ERROR, "An internal error occurred; it has been logged.") from exc


def _tool_error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _message(exc: ApiError) -> str:
    fields = exc.details.get("fields") or []
    named = "; ".join(f"{f['field']}: {f['message']}" for f in fields if isinstance(f, dict))
    return f"{exc.message} ({named})" if named else exc.message


def _invalid_arguments(exc: ValidationError) -> str:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
    return f"Invalid arguments: {problems}."


def _text(result: BaseModel) -> str:
    """What a client that reads only text sees: a document's text, an answer with its sources, or the JSON."""
    if isinstance(result, tools.DocumentText):
        return result.text
    if isinstance(result, assistants.AssistantAnswer):
        sources = "\n".join(f"[{n}] {c.document_id} ({c.chunk_id})" for n, c in enumerate(result.citations, start=1))
        return f"{result.answer}\n\nSources:\n{sources}" if sources else result.answer
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False)
