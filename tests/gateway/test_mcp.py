"""The MCP server at ``/mcp`` with the official ``mcp`` client over Streamable HTTP: a gateway on a real uvicorn
server with authentication on, the real retrieval and memory services behind it, and the test playing the
agent (it reads each run off the RUNS stream and publishes its events)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
import structlog
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import TextResourceContents
from threadline.events import RunRequested
from threadline_gateway import apikeys
from threadline_gateway.mcp import resources
from threadline_gateway.mcp.knowledge import join_chunks
from threadline_gateway.mcp.resources import document_uri

from tests.gateway import auth_helpers as creds
from tests.gateway.conftest import publish_events
from tests.gateway.test_multitask import _submitted

KNOWLEDGE_TOOLS = {"search_knowledge_base", "list_documents", "get_document"}
# A JSON-RPC request as any MCP client sends it first, for the checks below the client (status codes, headers).
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
JSON_RPC = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def mesh_gateway(serve: Callable[..., str], retrieval_target: str, memory_target: str) -> Callable[..., str]:
    """Start a gateway with authentication on, before the real retrieval and memory services; returns its URL."""

    def start(**overrides: Any) -> str:
        settings = {
            "GATEWAY_AUTH": "required",
            "GATEWAY_JWT_SECRET": creds.SECRET,
            "RETRIEVAL_TARGET": retrieval_target,
            "MEMORY_TARGET": memory_target,
        }
        return serve(**(settings | overrides))

    return start


@asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


def new_tenant() -> str:
    return f"mcp{uuid.uuid4().hex[:10]}"


async def post(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(url, **kwargs)


async def upload(url: str, tenant: str, name: str, text: str, collection: str = "") -> None:
    reply = await post(
        f"{url}/api/v1/documents",
        files=[("files", (name, text.encode(), "text/markdown"))],
        data={"collection": collection},
        headers=creds.bearer(creds.hs256(tenant=tenant)),
    )
    assert reply.status_code == 201, reply.text


def text_of(result: Any) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


async def test_without_a_valid_credential_mcp_is_refused(mesh_gateway: Callable[..., str]) -> None:
    key = apikeys.generate()[1]
    url = mesh_gateway(GATEWAY_API_KEYS=f"acme:{apikeys.digest(key).hex()}")

    with pytest.raises(Exception) as refused:  # the client wraps the refusal in exception groups
        async with mcp_session(url) as client:
            await client.list_tools()
    assert "MCPError" in repr(refused.value)

    missing = await post(f"{url}/mcp", json=INITIALIZE, headers=JSON_RPC)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith('Bearer realm="threadline"')
    assert missing.json()["error"]["code"] == "unauthenticated"
    forged = await post(f"{url}/mcp", json=INITIALIZE, headers=JSON_RPC | creds.bearer(creds.unsigned()))
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "invalid_token")
    # A page of another origin (what a DNS-rebinding attack is) is refused even with a credential.
    foreign = await post(
        f"{url}/mcp", json=INITIALIZE, headers=JSON_RPC | creds.bearer(creds.hs256()) | {"Origin": "http://evil.test"}
    )
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "origin_not_allowed")

    # An API key is as good as a token, in either header the REST API reads.
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        async with mcp_session(url, headers) as client:
            assert KNOWLEDGE_TOOLS <= {t.name for t in (await client.list_tools()).tools}


async def test_a_tenant_searches_and_reads_only_its_own_documents(mesh_gateway: Callable[..., str]) -> None:
    url = mesh_gateway()
    owner, other = new_tenant(), new_tenant()
    word = f"quillon{uuid.uuid4().hex[:6]}"
    name = f"{word} notes.md"  # a space: the resource URI must encode it
    await upload(url, owner, name, f"# Valves\n\nThe {word} valve is bled every ninety days.")
    uri = document_uri("", name)

    async with mcp_session(url, creds.bearer(creds.hs256(tenant=owner))) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert KNOWLEDGE_TOOLS | {"agent", "research"} <= set(tools)
        assert tools["agent"].input_schema["required"] == ["question"]

        found = await client.call_tool("search_knowledge_base", {"query": f"How often is the {word} valve bled?"})
        assert not found.is_error, text_of(found)
        hits = found.structured_content["results"]
        assert hits[0]["document_id"] == name
        assert word in hits[0]["text"] and hits[0]["chunk_id"] and isinstance(hits[0]["score"], float)

        listed = await client.call_tool("list_documents", {})
        assert [(d["id"], d["uri"]) for d in listed.structured_content["documents"]] == [(name, uri)]
        assert uri in {str(r.uri) for r in (await client.list_resources()).resources}
        read = (await client.read_resource(uri)).contents[0]
        assert isinstance(read, TextResourceContents) and word in read.text
        document = await client.call_tool("get_document", {"document_id": name})
        assert document.structured_content["text"] == read.text

    async with mcp_session(url, creds.bearer(creds.hs256(tenant=other))) as client:
        searched = await client.call_tool("search_knowledge_base", {"query": f"How often is the {word} valve bled?"})
        assert not searched.is_error and searched.structured_content["results"] == []
        assert (await client.call_tool("list_documents", {})).structured_content["documents"] == []
        assert (await client.list_resources()).resources == []
        fetched = await client.call_tool("get_document", {"document_id": name})
        assert fetched.is_error and f"No document {name!r}" in text_of(fetched)
        with pytest.raises(MCPError, match="No document"):
            await client.read_resource(uri)


async def test_resources_page_through_every_collection(
    mesh_gateway: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "PAGE_SIZE", 2)  # the gateway serves from this process: its pages are of 2
    url = mesh_gateway()
    tenant = new_tenant()
    stored = [("", "a.md"), ("", "b.md"), ("", "c.md"), ("extra", "d.md"), ("extra", "e.md")]
    for collection, name in stored:
        await upload(url, tenant, name, f"# {name}\n\nThe text of {name}.", collection)

    pages: list[list[str]] = []
    cursors: list[str | None] = []
    async with mcp_session(url, creds.bearer(creds.hs256(tenant=tenant))) as client:
        cursor = None
        while not cursors or cursor is not None:
            page = await client.list_resources(cursor=cursor)
            pages.append([str(r.uri) for r in page.resources])
            cursor = page.next_cursor
            cursors.append(cursor)
    uris = [document_uri(collection, name) for collection, name in stored]
    assert pages == [uris[0:2], uris[2:4], uris[4:]]
    assert cursors == ["default/2", "extra/1", None]


async def test_tool_errors_are_messages_the_model_can_read(mesh_gateway: Callable[..., str]) -> None:
    url = mesh_gateway()
    async with mcp_session(url, creds.bearer(creds.hs256(tenant=new_tenant()))) as client:
        bad_name = await client.call_tool("search_knowledge_base", {"query": "valves", "collection": "no/such"})
        assert bad_name.is_error and text_of(bad_name).startswith("Invalid arguments: collection:")
        absent = await client.call_tool("search_knowledge_base", {"query": "valves", "collection": "nosuch"})
        assert absent.is_error and "no collection 'nosuch'" in text_of(absent)
        wrong = await client.call_tool("search_knowledge_base", {"query": "valves", "k": 0, "top": 3})
        assert wrong.is_error
        assert "k: Input should be greater than or equal to 1" in text_of(wrong) and "top:" in text_of(wrong)
        blank = await client.call_tool("agent", {"question": ""})
        assert blank.is_error and "question" in text_of(blank)
        for failing in (client.call_tool("no_such_tool", {}), client.read_resource("file:///etc/passwd")):
            with pytest.raises(MCPError) as raised:
                await failing
            assert "Traceback" not in raised.value.message and raised.value.message


async def _next_run(namespace: str, seen: set[str]) -> RunRequested:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = await asyncio.to_thread(_submitted, namespace)
        if fresh := [run for run_id, run in runs.items() if run_id not in seen]:
            seen.add(fresh[0].run_id)
            return fresh[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the tool started no run")


async def test_an_assistant_tool_runs_it_for_the_caller_and_returns_its_cited_answer(
    mesh_gateway: Callable[..., str], nats_namespace: str
) -> None:
    url = mesh_gateway()
    tenant = new_tenant()
    citation: dict[str, Any] = {
        "document_id": "runs.md",
        "chunk_id": "runs.md#0",
        "text": "Runs are durable.",
        "score": 0.9,
    }
    seen: set[str] = set()
    async with mcp_session(url, creds.bearer(creds.hs256(tenant=tenant))) as client:
        asked = asyncio.create_task(client.call_tool("agent", {"question": "How are runs kept durable?"}))
        run = await _next_run(nats_namespace, seen)
        assert (run.tenant_id, run.input, run.graph_id) == (tenant, "How are runs kept durable?", "agent")
        ids = {"run_id": run.run_id, "thread_id": run.thread_id, "assistant_id": "agent"}
        end = {**ids, "answer": "Runs are durable [1].", "citations": [citation], "model": "extractive"}
        events: list[tuple[int, str, dict[str, Any]]] = [
            (0, "metadata", ids),
            (1, "citations", {"citations": [citation]}),
            (2, "end", end),
        ]
        await asyncio.to_thread(publish_events, nats_namespace, run.run_id, events)
        answered = await asked

        assert not answered.is_error, text_of(answered)
        assert answered.structured_content["answer"] == "Runs are durable [1]."
        assert answered.structured_content["citations"][0] | citation == answered.structured_content["citations"][0]
        assert answered.structured_content["thread_id"] == run.thread_id
        assert text_of(answered).endswith("Sources:\n[1] runs.md (runs.md#0)")

        # A follow-up on the thread the answer named; this run fails, and the tool says why.
        follow_up = asyncio.create_task(
            client.call_tool("agent", {"question": "And workers?", "thread_id": run.thread_id})
        )
        again = await _next_run(nats_namespace, seen)
        assert again.thread_id == run.thread_id
        failed = {"code": "model_unavailable", "message": "The model did not answer."}
        ids = {"run_id": again.run_id, "thread_id": again.thread_id, "assistant_id": "agent"}
        await asyncio.to_thread(
            publish_events, nats_namespace, again.run_id, [(0, "metadata", ids), (1, "error", failed)]
        )
        refused = await follow_up
        assert refused.is_error and text_of(refused) == "The model did not answer."


async def test_mcp_requests_are_rate_limited_and_audited(mesh_gateway: Callable[..., str]) -> None:
    url = mesh_gateway(GATEWAY_RATE_LIMIT_KEY="3")
    token = creds.bearer(creds.hs256(tenant="acme"))
    with structlog.testing.capture_logs() as logs:
        # Three requests: the client's probe, the call, and the listing it checks the result against.
        async with mcp_session(url, token) as client:
            await client.call_tool("list_documents", {})
        limited = await post(f"{url}/mcp", json=INITIALIZE, headers=JSON_RPC | token)
        await post(f"{url}/mcp", json=INITIALIZE, headers=JSON_RPC)

    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    calls = [(e["route"], e["status"], e["tenant"], e["subject"]) for e in logs if e["event"] == "api call"]
    assert calls == [
        ("/mcp", 200, "acme", "jwt:user-1"),
        ("/mcp", 200, "acme", "jwt:user-1"),
        ("/mcp", 200, "acme", "jwt:user-1"),
        ("/mcp", 429, "acme", "jwt:user-1"),
        ("/mcp", 401, "", "unauthenticated"),
    ]
    requests = [(e["method"], e["target"], e["outcome"], e["tenant"]) for e in logs if e["event"] == "mcp request"]
    assert requests == [
        ("server/discover", None, "ok", "acme"),
        ("tools/call", "list_documents", "ok", "acme"),
        ("tools/list", None, "ok", "acme"),
    ]


async def test_any_replica_serves_any_request(mesh_gateway: Callable[..., str]) -> None:
    first, second = mesh_gateway(), mesh_gateway()
    token = creds.bearer(creds.hs256(tenant=new_tenant()))
    opened = await post(f"{first}/mcp", json=INITIALIZE, headers=JSON_RPC | token)
    assert opened.status_code == 200 and "mcp-session-id" not in opened.headers  # nothing to come back to
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    headers = JSON_RPC | token | {"MCP-Protocol-Version": opened.json()["result"]["protocolVersion"]}
    listed = await post(f"{second}/mcp", json=listing, headers=headers)
    assert listed.status_code == 200, listed.text
    assert KNOWLEDGE_TOOLS <= {t["name"] for t in listed.json()["result"]["tools"]}


def test_a_document_is_joined_from_chunks_by_what_each_repeats_or_else_by_their_overlap() -> None:
    told = [
        ("## Care\n\nOil the horn. Wipe the face.", {}),
        ("## Care\n\nWipe the face. Store it dry.", {"repeated_chars": str(len("## Care\n\nWipe the face."))}),
    ]
    assert join_chunks(told) == "## Care\n\nOil the horn. Wipe the face. Store it dry."
    # Chunks stored before the service said what they repeat: the overlap is found in the text.
    untold = [("Oil the horn once a week, always.", {}), ("horn once a week, always. Then wipe.", {})]
    assert join_chunks(untold) == "Oil the horn once a week, always. Then wipe."
