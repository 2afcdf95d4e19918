"""No route lets seeded PII out: a document, a question, feedback and a store item carry an email, a phone
and a card number into the mesh; then every read in the OpenAPI document (and MCP, and the OpenAI API)
is called, streams included, and none of them shows the PII, though the stored checkpoint still holds it."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

import httpx
from langchain_core.messages import HumanMessage
from mcp import Client
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver

from tests.e2e.conftest import Mesh

EMAIL, OTHER_EMAIL = "ana.lima@example.com", "desk@corp-example.org"
PHONE, CARD = "(555) 123-4567", "4111 1111 1111 1111"
SEEDED = (EMAIL, OTHER_EMAIL, PHONE, CARD, "555) 123-4567", "4111111111111111")

# Reads that are POSTs (searches) and the bodies they take.
POST_READS: dict[str, dict[str, Any]] = {
    "/api/v1/threads/search": {},
    "/langgraph/threads/search": {},
    "/langgraph/threads/{thread_id}/history": {},
    "/langgraph/assistants/search": {},
    "/langgraph/runs/crons/search": {},
    "/langgraph/store/items/search": {"namespace_prefix": ["crm"]},
}
QUERIES: dict[str, dict[str, str]] = {"/langgraph/store/items": {"namespace": "crm.contacts", "key": "ana"}}


def _leaks(text: str) -> list[str]:
    return [pii for pii in SEEDED if pii in text]


def _seed(client: httpx.Client) -> dict[str, str]:
    word = f"quillon{uuid.uuid4().hex[:6]}"
    note = f"# The {word} desk\n\nThe {word} support desk answers at {OTHER_EMAIL} and {PHONE}.".encode()
    accepted = client.post(
        "/api/v1/documents", files=[("files", (f"{word}.md", note, "text/markdown"))], data={"wait": "false"}
    )
    assert accepted.status_code == 202, accepted.text
    deadline = time.monotonic() + 120
    while client.get(accepted.headers["location"]).json()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the upload was not indexed"
        time.sleep(0.2)

    asked = client.post(
        "/api/v1/query", json={"input": f"How do I reach the {word} support desk? I am {EMAIL}, card {CARD}."}
    )
    assert asked.status_code == 200, asked.text
    assert not _leaks(asked.text) and "[email]" in asked.text
    run = asked.json()
    rated = client.post(f"/api/v1/runs/{run['run_id']}/feedback", json={"rating": 1, "comment": f"mail me: {EMAIL}"})
    assert rated.status_code in (200, 201), rated.text
    stored = client.put(
        "/langgraph/store/items", json={"namespace": ["crm", "contacts"], "key": "ana", "value": {"note": EMAIL}}
    )
    assert stored.status_code in (200, 204), stored.text
    state = client.get(f"/langgraph/threads/{run['thread_id']}/state").json()
    return {
        "word": word,
        "thread_id": run["thread_id"],
        "run_id": run["run_id"],
        "assistant_id": run["assistant_id"],
        "model_id": run["assistant_id"],
        "document_id": f"{word}.md",
        "ingest_id": accepted.json()["ingest_id"],
        "checkpoint_id": state["checkpoint"]["checkpoint_id"],
    }


async def _asked(memory_target: str, thread_id: str) -> list[str]:
    """The thread's questions as its checkpoint, read straight from the memory service, holds them."""
    saver = RemoteCheckpointSaver(memory_target, tenant_id="default")
    try:
        stored = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
    finally:
        await saver.close()
    assert stored is not None
    return [str(m.content) for m in stored.checkpoint["channel_values"]["messages"] if isinstance(m, HumanMessage)]


async def _searched(url: str, question: str) -> str:
    async with Client(f"{url}/mcp") as mcp:
        found = await mcp.call_tool("search_knowledge_base", {"query": question, "k": 3})
    return json.dumps([c.model_dump() for c in found.content])


def test_no_response_shows_the_pii_that_was_put_in(client: httpx.Client, mesh: Mesh) -> None:
    ids = _seed(client)
    assert EMAIL in asyncio.run(_asked(mesh.memory_target, ids["thread_id"]))[0]  # stored as it was said

    document = client.get("/openapi.json").json()
    called = []
    for path, operations in document["paths"].items():
        if not path.startswith(("/api/", "/v1/", "/langgraph/")):
            continue
        names = set(re.findall(r"{(\w+)}", path))
        if not names <= ids.keys():
            continue
        url = path.format(**{name: ids[name] for name in names})
        if "get" in operations:
            with client.stream("GET", url, params=QUERIES.get(path)) as reply:
                body = reply.read().decode()
        elif "post" in operations and path in POST_READS:
            body = client.post(url, json=POST_READS[path]).text
        else:
            continue
        called.append(path)
        assert not _leaks(body), (path, _leaks(body), body[:500])

    # Every kind of read was walked: state and history of both APIs, streams, feedback, documents, the store.
    for read in (
        "/api/v1/threads/{thread_id}/state",
        "/api/v1/threads/{thread_id}/history",
        "/api/v1/runs/{run_id}/stream",
        "/api/v1/runs/{run_id}/wait",
        "/api/v1/feedback",
        "/langgraph/threads/{thread_id}/history",
        "/langgraph/threads/{thread_id}/state/{checkpoint_id}",
        "/langgraph/threads/{thread_id}/runs/{run_id}/join",
        "/langgraph/store/items",
    ):
        assert read in called, read

    question = f"How do I reach the {ids['word']} support desk?"
    completion = client.post(
        "/v1/chat/completions",
        json={"model": ids["model_id"], "messages": [{"role": "user", "content": f"{question} I am {EMAIL}"}]},
    )
    assert completion.status_code == 200 and not _leaks(completion.text), completion.text
    shown = asyncio.run(_searched(mesh.url, question))
    assert ids["word"] in shown and not _leaks(shown), shown
