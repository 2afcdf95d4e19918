"""A run's MCP tools: those of the servers its assistant's config names, as LangChain tools.

The config's shape is ``langchain-mcp-adapters``' (``MultiServerMCPClient``'s connections), but the
tools are made here on the ``mcp`` SDK's own ``Client``: the adapters' 0.3 releases need ``mcp<2``
(they import ``mcp.server.fastmcp``), and the gateway's MCP server needs ``mcp>=2.3`` in the same image.

The compiled graphs are shared by every tenant and assistant, so the servers are read from each
run's config (``configurable["mcp_servers"]``), never fixed when a graph is built. A server's tool
list is kept for AGENT_MCP_TOOLS_TTL_S, keyed by its whole connection (headers included, so two
tenants with different credentials never share one); each call opens its own session, so a server
restarted between calls is simply reached again and no idle session is held per tenant.

A server's health never fails a run: one that cannot be listed (down, slow, or a stdio server the
deployment does not allow) gives the run no tools and the model is told why; a call that fails or
takes longer than AGENT_MCP_CALL_TIMEOUT_S is a tool error (``ToolMessage`` status "error") the
model reads. A server listed before keeps its last list while it is down, so its calls fail the same way.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import mcp_types
import structlog
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from threadline.mcp_servers import MCP_SERVERS_KEY, StdioServer, StreamableHttpServer, parse_mcp_servers

log = structlog.get_logger("threadline.agent")

STDIO_OFF = "stdio MCP servers are off in this deployment (AGENT_MCP_ALLOW_STDIO)"
RETRY_FAILED_LIST_S = 5.0  # a server that could not be listed is tried again this soon, not on every run meanwhile
MAX_SERVERS = 256  # tool lists kept at once (least recently used dropped): bounded whatever tenants configure
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-compatible APIs take as a function's name
MAX_PAGES = 20  # of one server's tool list: a server that pages on forever is cut off here

McpServer = StreamableHttpServer | StdioServer


@dataclass(frozen=True)
class McpTools:
    """The tools of a run's MCP servers, and the servers that gave none, with why (told to the model)."""

    tools: list[BaseTool] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass
class _Listed:
    tools: list[BaseTool]
    error: str | None
    until: float  # monotonic time after which the server is listed again


class McpToolbox:
    """Lists MCP servers' tools for runs, with a cache shared by all runs of a worker."""

    def __init__(
        self,
        *,
        allow_stdio: bool,
        list_timeout_s: float,
        call_timeout_s: float,
        ttl_s: float,
        allowed_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.allow_stdio = allow_stdio
        self.allowed_hosts = allowed_hosts  # empty: any host
        self.list_timeout_s, self.call_timeout_s, self.ttl_s = list_timeout_s, call_timeout_s, ttl_s
        self._listed: OrderedDict[str, _Listed] = OrderedDict()
        self._listing: dict[str, asyncio.Task[_Listed]] = {}  # one listing per server at a time, however many runs

    async def tools_for(self, configurable: Mapping[str, Any]) -> McpTools:
        """The tools of the servers ``configurable`` names (none named: none)."""
        named = configurable.get(MCP_SERVERS_KEY)
        if not named:
            return McpTools()
        try:
            servers = parse_mcp_servers(named)
        except ValueError as exc:  # the gateway refuses these; a run given one anyway goes on without them
            return McpTools(unavailable={MCP_SERVERS_KEY: str(exc)})
        listed = await asyncio.gather(*(self._server(name, server) for name, server in servers.items()))
        tools: list[BaseTool] = []
        unavailable: dict[str, str] = {}
        for name, found in zip(servers, listed, strict=True):
            if found.tools:
                tools.extend(found.tools)
            else:
                unavailable[name] = found.error or "it offers no tools"
        return McpTools(tools, unavailable)

    async def _server(self, name: str, server: McpServer) -> _Listed:
        if isinstance(server, StdioServer) and not self.allow_stdio:
            return _Listed([], STDIO_OFF, 0.0)
        if isinstance(server, StreamableHttpServer) and self.allowed_hosts:
            host = urlsplit(server.url).hostname or ""
            if host not in self.allowed_hosts:
                return _Listed([], f"its host {host!r} is not one this deployment allows (AGENT_MCP_HOSTS)", 0.0)
        key = json.dumps([name, server.model_dump()], sort_keys=True)
        cached = self._listed.get(key)
        if cached is not None and cached.until > time.monotonic():
            self._listed.move_to_end(key)
            return cached
        task = self._listing.get(key)
        if task is None:
            task = self._listing[key] = asyncio.create_task(self._list(name, server, cached))
            task.add_done_callback(lambda _: self._listing.pop(key, None))
        listed = await asyncio.shield(task)  # a run cancelled meanwhile leaves the listing to the others
        self._listed[key] = listed
        self._listed.move_to_end(key)
        while len(self._listed) > MAX_SERVERS:
            self._listed.popitem(last=False)
        return listed

    async def _list(self, name: str, server: McpServer, before: _Listed | None) -> _Listed:
        found: list[mcp_types.Tool] = []
        try:
            async with asyncio.timeout(self.list_timeout_s), _connected(server) as client:
                cursor: str | None = None
                for _ in range(MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    found.extend(page.tools)
                    if not (cursor := page.next_cursor):
                        break
        except Exception as exc:  # whatever the transport raised: the server is unavailable, not the run
            error = f"it could not be reached ({_reason(exc)})"
            log.warning("MCP server unavailable", server=name, error=error)
            kept = before.tools if before is not None else []  # its calls then fail as tool errors
            return _Listed(kept, error, time.monotonic() + min(RETRY_FAILED_LIST_S, self.ttl_s))
        usable = [tool for tool in found if TOOL_NAME.match(tool.name)]
        if len(usable) < len(found):  # a chat API refuses the whole request over one such name
            skipped = [tool.name for tool in found if tool not in usable]
            log.warning("MCP tools skipped: not a function name a model accepts", server=name, tools=skipped)
        return _Listed([self._tool(name, server, tool) for tool in usable], None, time.monotonic() + self.ttl_s)

    def _tool(self, name: str, server: McpServer, tool: mcp_types.Tool) -> BaseTool:
        """``tool`` as a LangChain tool: each call a session of its own, any failure a tool error the model reads."""
        timeout_s = self.call_timeout_s

        async def call(**arguments: Any) -> str:
            try:
                async with asyncio.timeout(timeout_s), _connected(server) as client:
                    result = await client.call_tool(tool.name, arguments)
            except TimeoutError:
                raise ToolException(f"The MCP server {name!r} did not answer within {timeout_s:g} s.") from None
            except Exception as exc:
                raise ToolException(f"The MCP server {name!r} failed: {_reason(exc)}.") from exc
            text = _text(result)
            if result.is_error:
                raise ToolException(text or f"The {tool.name} tool of MCP server {name!r} failed.")
            return text

        return StructuredTool(
            name=tool.name,
            description=tool.description or "",
            args_schema=tool.input_schema,
            coroutine=call,
            handle_tool_error=True,  # a ToolException becomes the ToolMessage's content, status "error"
            metadata={"mcp_server": name},
        )


@asynccontextmanager
async def _connected(server: McpServer) -> AsyncIterator[Client]:
    """A session with ``server``, closed on leaving."""
    if isinstance(server, StdioServer):
        params = StdioServerParameters(command=server.command, args=server.args, env=server.env)
        async with Client(params) as client:
            yield client
        return
    async with (
        create_mcp_http_client(headers=server.headers) as http,
        Client(streamable_http_client(server.url, http_client=http)) as client,
    ):
        yield client


def _text(result: mcp_types.CallToolResult) -> str:
    """A call's result as the model reads it: its text, else its structured content as JSON."""
    texts = [block.text for block in result.content if isinstance(block, mcp_types.TextContent)]
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return ", ".join(f"[{block.type} content]" for block in result.content)


def _reason(exc: BaseException) -> str:
    """The first real cause of ``exc``: the transports raise exception groups around it."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
