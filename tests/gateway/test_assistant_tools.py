"""An assistant's MCP servers are checked where assistants are made (both APIs): a malformed entry is a 422 that
names it, a well-formed one is kept; a run cannot name MCP servers of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

WEATHER = {"transport": "streamable_http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "t"}}
LOCAL = {"transport": "stdio", "command": "uvx", "args": ["mcp-server-time"]}
MALFORMED: list[Any] = [
    {"weather": {"transport": "streamable_http"}},  # no url
    {"weather": {"transport": "streamable_http", "url": "ftp://example.com"}},
    {"weather": {"transport": "websocket", "url": "ws://example.com"}},
    {"weather": {**WEATHER, "headers": {"Authorization": 7}}},
    {"local": {"transport": "stdio", "args": ["x"]}},  # no command
    {"bad name!": WEATHER},
    ["weather"],
]


@pytest.fixture
def gateway(make_gateway: Callable[..., TestClient], memory_target: str) -> TestClient:
    return make_gateway(MEMORY_TARGET=memory_target, GATEWAY_DEFAULT_TENANT=f"mcp-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("servers", MALFORMED)
def test_a_malformed_mcp_servers_entry_is_a_422_in_both_assistant_apis(gateway: TestClient, servers: Any) -> None:
    config = {"configurable": {"mcp_servers": servers}}
    for path in ("/api/v1/assistants", "/langgraph/assistants"):
        refused = gateway.post(path, json={"graph_id": "agent", "config": config})
        assert refused.status_code == 422, (path, refused.text)
        assert "mcp_servers" in refused.text


def test_well_formed_servers_are_kept_and_a_run_cannot_bring_its_own(gateway: TestClient) -> None:
    config = {"configurable": {"mcp_servers": {"weather": WEATHER, "local": LOCAL}, "client_tools": False}}
    created = gateway.post("/api/v1/assistants", json={"graph_id": "agent", "config": config})
    assert created.status_code == 201, created.text
    assistant = created.json()["assistant_id"]
    assert created.json()["config"]["configurable"]["mcp_servers"]["weather"]["url"] == WEATHER["url"]
    changed = gateway.patch(
        f"/langgraph/assistants/{assistant}", json={"config": {"configurable": {"client_tools": "sometimes"}}}
    )
    assert changed.status_code == 422 and "client_tools" in changed.text

    ran = gateway.post(
        "/api/v1/query",
        json={"input": "hi", "config": {"configurable": {"mcp_servers": {"weather": WEATHER}}}},
    )
    assert ran.status_code == 422
    assert ran.json()["error"]["details"]["fields"] == [
        {"field": "config.configurable.mcp_servers", "message": "MCP servers are named in an assistant's config"}
    ]
