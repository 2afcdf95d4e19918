"""The MCP servers an assistant's config names (``config.configurable["mcp_servers"]``), checked in one place.

The gateway refuses an assistant whose entries are malformed (422) and the agent reads them before it
connects, so both agree on the shape: the one ``langchain-mcp-adapters``' ``MultiServerMCPClient`` takes,
a mapping of server name to ``{"transport": "streamable_http", "url": ..., "headers": {...}}`` or
``{"transport": "stdio", "command": ..., "args": [...]}``. Whether stdio servers may run at all is
the agent deployment's decision (``AGENT_MCP_ALLOW_STDIO``), not the config's.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MCP_SERVERS_KEY = "mcp_servers"
_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class StreamableHttpServer(BaseModel):
    """An MCP server over Streamable HTTP; ``headers`` carry its credentials (e.g. ``Authorization``)."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["streamable_http"]
    url: str = Field(pattern=r"^https?://[^\s/]+", max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)


class StdioServer(BaseModel):
    """An MCP server the agent starts as a process and speaks to over stdin/stdout."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["stdio"]
    command: str = Field(min_length=1, max_length=1024)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None


McpServer = Annotated[StreamableHttpServer | StdioServer, Field(discriminator="transport")]
_SERVERS = TypeAdapter(dict[str, McpServer])


def parse_mcp_servers(value: Any) -> dict[str, StreamableHttpServer | StdioServer]:
    """``value`` (a config's ``mcp_servers``) as checked entries; ``ValueError`` naming each problem otherwise."""
    if not isinstance(value, dict):
        raise ValueError("mcp_servers maps each server's name to its connection")
    bad_names = [name for name in value if not isinstance(name, str) or not _SERVER_NAME.match(name)]
    if bad_names:
        raise ValueError(f"mcp_servers: a server's name is 1-64 letters, digits, '_' or '-', not {bad_names[0]!r}")
    try:
        return _SERVERS.validate_python(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"mcp_servers: {problems}") from None
