"""A run's events on the real NATS: numbered without gaps, tokens coalesced without losing a character."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient
from threadline.events import RunEvent, Topology
from threadline.nats import ensure_streams
from threadline_agent.guardrails import Guardrails
from threadline_agent.worker import RunEvents

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
    events = RunEvents(nc, topology, run_id, coalesce_s)
    await events.emit("metadata", {"run_id": run_id})
    for word in WORDS:
        await events.emit("token", {"text": word})
    await events.emit("tool_call", {"name": "search_knowledge_base"})
    await events.emit("token", {"text": "after"})
    await asyncio.sleep(coalesce_s * 3)  # a pause longer than the window: the token goes out on its own
    await events.emit("token", {"text": " the end"})
    await events.finish("end", {"answer": "done"})
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
    for coalesce_s in (0.0, 0.05):
        events = RunEvents(nc, topology, "run-redacted", coalesce_s, Guardrails())
        for piece in ["Mail ", "jo", "hn@exa", "mple.com", " or call 555 ", "123 4567", " now."]:
            await events.emit("token", {"text": piece})
        await events.emit("citations", {"citations": [{"document_id": "d", "text": "ssn 123-45-6789"}]})
        await events.finish("end", {"answer": "Mail john@example.com or call 555 123 4567 now.", "citations": []})
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
