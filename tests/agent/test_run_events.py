"""A run's events on the real NATS: numbered without gaps, tokens coalesced without losing a character."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient
from threadline.events import Topology
from threadline.nats import ensure_streams
from threadline.run_events import (
    Citation,
    Citations,
    RunEvent,
    RunResult,
    RunStarted,
    StateChunk,
    Token,
    ToolCall,
)
from threadline_agent.worker.guardrails import Guardrails
from threadline_agent.worker.publisher import RunEventPublisher

from tests.conftest import NATS_URL

WORDS = [f"word{n} " for n in range(50)]


@pytest.fixture
async def nc(nats_namespace: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(NATS_URL)
    topology = Topology(nats_namespace)
    await ensure_streams(client.jetstream(), topology)
    yield client
    for stream in (topology.runs_stream, topology.run_events_stream):
        await client.jetstream().delete_stream(stream)
    await client.drain()


async def _published(nc: NatsClient, topology: Topology, run_id: str, coalesce_s: float) -> list[RunEvent]:
    received: list[RunEvent] = []

    async def on_event(msg) -> None:
        received.append(RunEvent.model_validate_json(msg.data))

    sub = await nc.subscribe(topology.run_events(run_id), cb=on_event)
    events = RunEventPublisher(nc, topology, run_id, coalesce_s=coalesce_s)
    await events.emit(RunStarted(run_id=run_id, thread_id="t", assistant_id="agent"))
    for word in WORDS:
        await events.emit(Token(text=word))
    await events.emit(ToolCall(name="search_knowledge_base"))
    await events.emit(Token(text="after"))
    await asyncio.sleep(coalesce_s * 3)  # a pause longer than the window: the token goes out on its own
    await events.emit(Token(text=" the end"))
    await events.finish(RunResult(run_id=run_id, thread_id="t", assistant_id="agent", answer="done"))
    await nc.flush()
    await asyncio.sleep(0.2)
    await sub.unsubscribe()
    return received


async def test_fast_tokens_travel_together_in_order(nc: NatsClient, nats_namespace: str) -> None:
    topology = Topology(nats_namespace)
    events = await _published(nc, topology, "run-coalesced", coalesce_s=0.05)

    assert [e.seq for e in events] == list(range(len(events)))
    kinds = [e.kind for e in events]
    assert kinds == ["metadata", "token", "tool_call", "token", "token", "end"]
    texts = [e.data["text"] for e in events if e.kind == "token"]
    assert texts == ["".join(WORDS), "after", " the end"]


async def test_without_a_window_every_token_is_its_own_event(nc: NatsClient, nats_namespace: str) -> None:
    events = await _published(nc, Topology(nats_namespace), "run-each", coalesce_s=0.0)

    assert [e.seq for e in events] == list(range(len(events)))
    assert sum(e.kind == "token" for e in events) == len(WORDS) + 2


async def test_redaction_covers_split_tokens_the_answer_and_citations(nc: NatsClient, nats_namespace: str) -> None:
    topology = Topology(nats_namespace)
    received: list[RunEvent] = []

    async def on_event(msg) -> None:
        received.append(RunEvent.model_validate_json(msg.data))

    sub = await nc.subscribe(topology.run_events("run-redacted"), cb=on_event)
    passage = Citation(document_id="d", chunk_id="d#0", text="ssn 123-45-6789", score=0.5)
    state = StateChunk({"messages": [{"type": "human", "content": "I am john@example.com"}]})
    for coalesce_s in (0.0, 0.05):
        events = RunEventPublisher(nc, topology, "run-redacted", coalesce_s=coalesce_s, guardrails=Guardrails())
        for piece in ["Mail ", "jo", "hn@exa", "mple.com", " or call 555 ", "123 4567", " now."]:
            await events.emit(Token(text=piece))
        await events.emit(Citations(citations=[passage]))
        await events.emit_state("values", state)
        answer = "Mail john@example.com or call 555 123 4567 now."
        await events.finish(RunResult(run_id="run-redacted", thread_id="t", assistant_id="agent", answer=answer))
    await nc.flush()
    await asyncio.sleep(0.2)
    await sub.unsubscribe()

    assert len([e for e in received if e.kind == "end"]) == 2
    raw = "".join(e.model_dump_json() for e in received)
    assert "john" not in raw and "4567" not in raw and "6789" not in raw
    for run in (received[: len(received) // 2], received[len(received) // 2 :]):
        tokens = "".join(e.data["text"] for e in run if e.kind == "token")
        assert tokens == "Mail [email] or call [phone] now."
        assert next(e for e in run if e.kind == "end").data["answer"] == tokens
        assert next(e for e in run if e.kind == "citations").data["citations"][0]["text"] == "ssn [ssn]"
        assert next(e for e in run if e.kind == "values").data == {
            "messages": [{"type": "human", "content": "I am [email]"}]
        }


async def test_the_events_on_the_wire_keep_their_keys(nc: NatsClient, nats_namespace: str) -> None:
    """Clients read the same JSON as before the payloads were typed: only defaulted fields were added."""
    topology = Topology(nats_namespace)
    received: list[RunEvent] = []

    async def on_event(msg) -> None:
        received.append(RunEvent.model_validate_json(msg.data))

    sub = await nc.subscribe(topology.run_events("run-keys"), cb=on_event)
    events = RunEventPublisher(nc, topology, "run-keys")
    await events.emit(Token(text="hi", message_id="m1", node="agent"))
    await events.emit_state("updates", StateChunk({"agent": {"messages": []}}))
    await events.finish(RunResult(run_id="run-keys", thread_id="t", assistant_id="agent", answer="hi"))
    await nc.flush()
    await asyncio.sleep(0.2)
    await sub.unsubscribe()

    token, update, end = received
    assert (token.kind, token.data) == ("token", {"text": "hi", "message_id": "m1", "node": "agent"})
    assert (update.kind, update.data) == ("updates", {"agent": {"messages": []}})
    assert end.kind == "end" and end.result().answer == "hi"
    assert set(end.data) >= {
        "run_id",
        "thread_id",
        "assistant_id",
        "status",
        "answer",
        "citations",
        "model",
        "usage",
        "knowledge_base_unavailable",
        "cached",
    }
    assert set(end.data["usage"]) == {"input_tokens", "output_tokens", "total_tokens", "approximate", "cost_usd"}
