"""One question through the whole mesh: gateway -> NATS -> agent -> retrieval and memory -> back."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver

from tests.e2e.conftest import Mesh

DOCS = Path(__file__).resolve().parents[2] / "docs"


def ask(client: httpx.Client, text: str, **extra: object) -> dict:
    reply = client.post("/api/v1/query", json={"input": text, **extra})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_answer_is_cited_from_the_knowledge_base(client: httpx.Client) -> None:
    body = ask(client, "How are runs kept durable?")

    assert body["answer"].strip()
    assert uuid.UUID(body["run_id"]) and uuid.UUID(body["thread_id"])
    assert body["citations"], body
    sample_ids = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    for citation in body["citations"]:
        assert set(citation) >= {"document_id", "chunk_id", "text", "score"}
        assert citation["document_id"] in sample_ids
        assert citation["text"].strip()
    assert "[1]" in body["answer"]
    # Whole sentences only, each cited: a chunk's cut-off start or end is never quoted.
    quoted = re.findall(r"(.+?) \[(\d+)\]([.!?])(?: |$)", body["answer"])
    assert " ".join(f"{s} [{n}]{end}" for s, n, end in quoted) == body["answer"], body["answer"]
    for sentence, n, _end in quoted:
        assert re.match(r"[\"'(]*[A-Z0-9]", sentence), sentence
        assert 1 <= int(n) <= len(body["citations"])


async def test_follow_up_continues_the_thread_from_memory(client: httpx.Client, mesh: Mesh) -> None:
    first = ask(client, "How are runs kept durable?")
    second = ask(client, "And what happens when a worker dies?", thread_id=first["thread_id"])

    assert second["thread_id"] == first["thread_id"]
    assert second["run_id"] != first["run_id"]
    saver = RemoteCheckpointSaver(mesh.memory_target, tenant_id="default")
    try:
        state = await saver.aget_tuple({"configurable": {"thread_id": first["thread_id"]}})
    finally:
        await saver.close()
    assert state is not None
    messages = state.checkpoint["channel_values"]["messages"]
    questions = [m.content for m in messages if isinstance(m, HumanMessage)]
    assert questions == ["How are runs kept durable?", "And what happens when a worker dies?"]
    answers = [m for m in messages if isinstance(m, AIMessage) and not m.tool_calls]
    assert [a.content for a in answers] == [first["answer"], second["answer"]]


def test_a_thread_id_that_does_not_exist_yet_starts_that_thread(client: httpx.Client) -> None:
    thread_id = f"my-thread-{uuid.uuid4().hex[:8]}"
    body = ask(client, "Which ports do the services listen on?", thread_id=thread_id)
    assert body["thread_id"] == thread_id
    assert body["answer"].strip()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"input": ""}, "input"),
        ({"input": "   \n "}, "input"),
        ({}, "input"),
        ({"input": 42}, "input"),
        ({"input": "hi", "thread_id": "../../etc"}, "thread_id"),
        ({"input": "hi", "unexpected": True}, "unexpected"),
        ({"input": "x" * 9000}, "input"),
    ],
)
def test_invalid_input_is_a_422_naming_the_field(client: httpx.Client, payload: dict, field: str) -> None:
    reply = client.post("/api/v1/query", json=payload)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "validation_error"
    assert error["request_id"] == reply.headers["x-request-id"]
    assert field in [item["field"] for item in error["details"]["fields"]]


def test_malformed_json_is_a_422(client: httpx.Client) -> None:
    reply = client.post(
        "/api/v1/query", content=b'{"input": "unterminated', headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "validation_error"


def test_invalid_utf8_is_a_400(client: httpx.Client) -> None:
    reply = client.post("/api/v1/query", content=b'{"input": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "bad_request"


def test_oversized_body_is_a_413(client: httpx.Client) -> None:
    reply = client.post("/api/v1/query", json={"input": "x" * 2_000_000})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"


def test_oversized_body_without_content_length_is_a_413(client: httpx.Client) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    reply = client.post("/api/v1/query", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413


def test_unknown_route_is_a_json_404(client: httpx.Client) -> None:
    reply = client.get("/api/v1/nope")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"


def test_readiness_reports_every_part(client: httpx.Client) -> None:
    reply = client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ready",
        "checks": {"nats": "ok", "retrieval": "ok", "memory": "ok", "agent": "ok"},
    }
