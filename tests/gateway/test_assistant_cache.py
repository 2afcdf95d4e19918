"""The assistant lookup of a run's start, cached in the gateway, against a real memory service."""

from __future__ import annotations

import uuid

import grpc
import pytest
from threadline_gateway.assistant_cache import CachingMemory
from threadline_gateway.errors import ApiError
from threadline_gateway.memory import Memory


def tenant() -> str:
    return f"cache-{uuid.uuid4().hex[:8]}"  # the memory service is the session's: a tenant of this test's own


async def test_a_run_reuses_the_assistant_it_read_until_this_gateway_changes_it(memory_target: str) -> None:
    acme = tenant()
    async with grpc.aio.insecure_channel(memory_target) as channel:
        gateway, other_replica = CachingMemory(channel, assistant_ttl_s=600), Memory(channel)
        created = await gateway.create_assistant(acme, graph_id="agent", config={"tags": ["v1"]})
        first = await gateway.assistant_for_run(acme, created.assistant_id)
        assert first.version == 1

        # Changed elsewhere: this gateway keeps what it read (for its TTL), without asking again.
        await other_replica.update_assistant(acme, created.assistant_id, config={"tags": ["v2"]})
        assert (await gateway.assistant_for_run(acme, created.assistant_id)).version == 1

        # Changed through this gateway: seen by the next run at once.
        await gateway.update_assistant(acme, created.assistant_id, config={"tags": ["v3"]})
        assert (await gateway.assistant_for_run(acme, created.assistant_id)).version == 3
        await gateway.set_latest_assistant(acme, created.assistant_id, 1)
        assert (await gateway.assistant_for_run(acme, created.assistant_id)).version == 1
        await gateway.delete_assistant(acme, created.assistant_id)
        with pytest.raises(ApiError) as raised:
            await gateway.assistant_for_run(acme, created.assistant_id)
        assert raised.value.status == 404


async def test_a_missing_assistant_is_not_kept_and_a_ttl_of_0_reads_every_time(memory_target: str) -> None:
    acme, wanted = tenant(), str(uuid.uuid4())
    async with grpc.aio.insecure_channel(memory_target) as channel:
        gateway, other_replica = CachingMemory(channel, assistant_ttl_s=600), Memory(channel)
        with pytest.raises(ApiError):
            await gateway.assistant_for_run(acme, wanted)
        await other_replica.create_assistant(acme, graph_id="agent", assistant_id=wanted)
        assert (await gateway.assistant_for_run(acme, wanted)).assistant_id == wanted

        uncached = CachingMemory(channel, assistant_ttl_s=0)
        assert (await uncached.assistant_for_run(acme, wanted)).version == 1
        await other_replica.update_assistant(acme, wanted, config={"tags": ["v2"]})
        assert (await uncached.assistant_for_run(acme, wanted)).version == 2


async def test_another_tenants_change_leaves_the_entry(memory_target: str) -> None:
    acme, globex = tenant(), tenant()
    async with grpc.aio.insecure_channel(memory_target) as channel:
        gateway, other_replica = CachingMemory(channel, assistant_ttl_s=600), Memory(channel)
        created = await gateway.create_assistant(acme, graph_id="agent")
        assert (await gateway.assistant_for_run(acme, created.assistant_id)).version == 1
        await other_replica.update_assistant(acme, created.assistant_id, config={"tags": ["v2"]})
        await gateway.create_assistant(globex, graph_id="agent")
        assert (await gateway.assistant_for_run(acme, created.assistant_id)).version == 1
        # A graph's default assistant, by the graph's name, is kept too.
        assert (await gateway.assistant_for_run(acme, "agent")).graph_id == "agent"
