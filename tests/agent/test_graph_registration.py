"""A worker announces the graphs it serves to the memory service's assistant registry at start: their
schemas and drawings, and a default assistant each; with the memory service down it starts all the
same and registers them once the service is up. Real NATS, a real memory service on SQLite."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from threadline.assistants import default_assistant_id
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import AssistantServiceStub
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.remote import assistants
from threadline_memory.server import serve as serve_memory
from threadline_memory.settings import MemorySettings

from tests.agent.conftest import running_worker
from tests.conftest import free_port

BUILT_IN = ("agent", "research", "planner", "supervisor")  # the graphs a worker serves by default


def _memory(port: int, tmp_path: Path) -> MemorySettings:
    return MemorySettings(
        MEMORY_HOST="127.0.0.1", MEMORY_PORT=port, DATABASE_URL=None, MEMORY_SQLITE_PATH=tmp_path / "memory.sqlite"
    )


async def _registered(target: str, graph_id: str) -> pb.GraphSchemas:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = AssistantServiceStub(channel)
        default = await stub.GetAssistant(pb.GetAssistantRequest(tenant_id="acme", assistant_id=graph_id))
        assert (default.assistant_id, default.system) == (default_assistant_id(graph_id), True)
        return await stub.GetGraphSchemas(pb.GetAssistantRequest(tenant_id="acme", assistant_id=graph_id))


async def test_a_worker_registers_its_graphs_schemas_and_default_assistants(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    port = free_port()
    async with (
        serve_memory(_memory(port, tmp_path)),
        running_worker(nats_namespace, nc, tmp_path, ExtractiveAnswerer(), MEMORY_TARGET=f"127.0.0.1:{port}") as w,
    ):
        assert w._announcing is not None
        assert sorted(await asyncio.wait_for(w._announcing, 10)) == sorted(default_assistant_id(g) for g in BUILT_IN)
        schemas = await _registered(f"127.0.0.1:{port}", "agent")
        assert "messages" in json.loads(schemas.input_schema_json)["properties"]
        assert "messages" in json.loads(schemas.state_schema_json)["properties"]
        assert "agent" in {n["id"] for n in json.loads(schemas.graph_json)["nodes"]}
        # A second replica registers the same graphs again: the same default assistants, nothing new.
        again = await assistants.announce_graphs(
            f"127.0.0.1:{port}",
            {gid: g.compiled for gid, g in w.loaded.items()},
            guard=w.settings.guard("memory"),
            timeout_s=5,
        )
        assert sorted(await asyncio.wait_for(again, 10)) == sorted(default_assistant_id(g) for g in BUILT_IN)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            found = await AssistantServiceStub(channel).CountAssistants(pb.SearchAssistantsRequest(tenant_id="acme"))
        assert found.count == len(BUILT_IN)


async def test_a_worker_starts_with_memory_down_and_registers_once_it_is_up(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assistants, "ROUND_EVERY_S", 0.2)  # and the breaker opened by the failures closes soon
    port = free_port()
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), MEMORY_TARGET=f"127.0.0.1:{port}", AGENT_BREAKER_RESET_S=0.5
    ) as worker:
        assert worker._announcing is not None and not worker._announcing.done()
        async with serve_memory(_memory(port, tmp_path)):
            await asyncio.wait_for(worker._announcing, 30)
            schemas = await _registered(f"127.0.0.1:{port}", "research")
            assert schemas.graph_id == "research"
