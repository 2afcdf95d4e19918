"""The MCP server through the whole mesh, with the official ``mcp`` client over Streamable HTTP: the real retrieval
service behind the knowledge tools and resources, and a real agent (the offline answerer) behind the assistant tools.

Each test opens its own client: its task group must close in the task that opened it, which a fixture's is not.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from mcp import Client
from mcp_types import TextResourceContents
from threadline_gateway.mcp.resources import document_uri

from tests.e2e.conftest import Mesh

DOCS = Path(__file__).resolve().parents[2] / "docs"


def sample_ids() -> set[str]:
    return {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}


def text_of(result: Any) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


async def test_tools_and_resources_are_listed(mesh: Mesh) -> None:
    async with Client(f"{mesh.url}/mcp") as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        resources = {str(r.uri) for r in (await mcp.list_resources()).resources}
        templates = (await mcp.list_resource_templates()).resource_templates
        read = (await mcp.read_resource(document_uri("", "architecture.md"))).contents[0]

    assert {"search_knowledge_base", "list_documents", "get_document", "agent"} <= set(tools)
    search = tools["search_knowledge_base"].input_schema["properties"]
    assert set(search) == {"query", "collection", "filter", "k", "mode", "rerank"}
    assert tools["agent"].input_schema["required"] == ["question"] and tools["agent"].description
    assert document_uri("", "architecture.md") in resources
    assert [t.uri_template for t in templates] == ["threadline://documents/{collection}/{document_id}"]
    # Put back together from its chunks, the document reads as the file did (but for whitespace between chunks).
    original = (DOCS / "architecture.md").read_text()
    assert isinstance(read, TextResourceContents) and read.text.split() == original.split()


async def test_search_finds_the_loaded_corpus_and_an_upload(mesh: Mesh) -> None:
    word = f"vorpal{uuid.uuid4().hex[:6]}"
    note = f"# Vorpal\n\nThe {word} gasket is replaced every seven years."
    async with Client(f"{mesh.url}/mcp") as mcp, httpx.AsyncClient(base_url=mesh.url, timeout=60) as client:
        found = await mcp.call_tool("search_knowledge_base", {"query": "How are runs kept durable?", "k": 3})
        files = [("files", (f"{word}.md", note.encode(), "text/markdown"))]
        uploaded = await client.post("/api/v1/documents", files=files)
        assert uploaded.status_code == 201, uploaded.text
        keyword = await mcp.call_tool("search_knowledge_base", {"query": word, "mode": "keyword"})

    assert not found.is_error, text_of(found)
    hits = found.structured_content["results"]
    assert 0 < len(hits) <= 3
    assert {h["document_id"] for h in hits} <= sample_ids()
    assert all(h["chunk_id"] and h["text"].strip() for h in hits)
    assert [h["document_id"] for h in keyword.structured_content["results"]] == [f"{word}.md"]


async def test_an_assistant_answers_with_citations_and_follows_up(mesh: Mesh) -> None:
    async with Client(f"{mesh.url}/mcp") as mcp:
        first = await mcp.call_tool("agent", {"question": "How are runs kept durable?"})
        assert not first.is_error, text_of(first)
        thread_id = first.structured_content["thread_id"]
        follow_up = await mcp.call_tool(
            "agent", {"question": "And what happens when a worker dies?", "thread_id": thread_id}
        )

    answer = first.structured_content
    assert answer["answer"].strip() and "[1]" in answer["answer"]
    assert answer["citations"] and {c["document_id"] for c in answer["citations"]} <= sample_ids()
    assert "Sources:\n[1] " in text_of(first)
    assert not follow_up.is_error, text_of(follow_up)
    assert follow_up.structured_content["thread_id"] == thread_id
    assert follow_up.structured_content["run_id"] != answer["run_id"]
