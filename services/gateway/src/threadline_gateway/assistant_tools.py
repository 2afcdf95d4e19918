"""What an assistant's config says of its tools: the MCP servers its agent uses and whether it takes client tools.

Checked when an assistant is created or changed (a malformed entry is a 422 there, not a run
that fails later) by both assistant APIs, the v1 one and the LangGraph-compatible one.
"""

from __future__ import annotations

from typing import Any

from threadline.mcp_servers import MCP_SERVERS_KEY, parse_mcp_servers

from threadline_gateway.memory import Assistant

CLIENT_TOOLS_KEY = "client_tools"  # false: requests that bring their own tools are refused (openai_tools.py)


def checked_tool_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (an assistant's: ``{"configurable": ...}``) unchanged; ``ValueError`` naming a malformed
    ``mcp_servers`` or ``client_tools``."""
    configurable = config.get("configurable")
    if not isinstance(configurable, dict):
        return config
    if MCP_SERVERS_KEY in configurable:
        parse_mcp_servers(configurable[MCP_SERVERS_KEY])
    if not isinstance(configurable.get(CLIENT_TOOLS_KEY, True), bool):
        raise ValueError(f"{CLIENT_TOOLS_KEY} is true or false")
    return config


def allows_client_tools(assistant: Assistant) -> bool:
    """Whether ``assistant`` takes a client's tools: yes unless its config says ``client_tools: false``."""
    configurable = (assistant.config or {}).get("configurable") or {}
    return configurable.get(CLIENT_TOOLS_KEY, True) is not False
