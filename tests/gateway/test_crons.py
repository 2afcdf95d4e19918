"""Crons through the real ``langgraph-sdk``: made, found, changed and deleted; a due cron fires once per tick
however many gateways tick against the same PostgreSQL memory service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from threadline.events import RunRequested, Topology
from threadline.memory.v1.memory_pb2_grpc import AssistantServiceStub
from threadline_agent.remote.assistants import register_graphs as register
from threadline_agent.resilience import CircuitBreaker, Guarded, RetryPolicy
from threadline_memory.server import serve as serve_memory
from threadline_memory.settings import MemorySettings

from tests.conftest import free_port
from tests.memory.conftest import memory_settings

QUESTION = {"messages": [{"role": "user", "content": "What is new today?"}]}


@pytest.fixture
async def lg(serve: Callable[..., str], memory_target: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=f"{serve(MEMORY_TARGET=memory_target)}/langgraph")
    yield client
    await client.aclose()


async def _status(call) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await call
    return refused.value.response.status_code


async def test_crons_are_made_found_changed_and_deleted(lg: LangGraphClient) -> None:
    thread = await lg.threads.create()
    daily = await lg.crons.create("agent", schedule="0 9 * * *", input=QUESTION, metadata={"team": "news"})
    assert daily["schedule"] == "0 9 * * *" and daily["thread_id"] is None and daily["enabled"]
    assert daily["next_run_date"] and daily["payload"]["input"] == QUESTION
    hourly = await lg.crons.create_for_thread(
        thread["thread_id"], "agent", schedule="0 * * * *", input=QUESTION, timezone="Europe/Paris"
    )
    assert hourly["thread_id"] == thread["thread_id"] and hourly["timezone"] == "Europe/Paris"

    found = await lg.crons.search(metadata={"team": "news"})
    assert [c["cron_id"] for c in found] == [daily["cron_id"]]
    assert {c["cron_id"] for c in await lg.crons.search(thread_id=thread["thread_id"])} == {hourly["cron_id"]}
    assert await lg.crons.count() == 2

    paused = await lg.crons.update(daily["cron_id"], enabled=False, schedule="30 8 * * 1-5")
    assert paused["enabled"] is False and paused["schedule"] == "30 8 * * 1-5" and paused["next_run_date"] is None
    await lg.crons.delete(daily["cron_id"])
    assert [c["cron_id"] for c in await lg.crons.search()] == [hourly["cron_id"]]
    assert await _status(lg.crons.delete(daily["cron_id"])) == 404


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"schedule": "every day at nine"}, 422),
        ({"schedule": "61 * * * *"}, 422),
        ({"schedule": "0 9 * * *", "timezone": "Mars/Olympus"}, 422),
        ({"schedule": "0 9 * * *", "webhook": "ftp://example.com"}, 422),
        ({"schedule": "0 9 * * *", "input": {"messages": []}}, 422),
        # checked as a run is, when the cron is made rather than at every tick
        ({"schedule": "0 9 * * *", "input": None}, 422),  # each tick's thread is new: nothing to go on from
        ({"schedule": "0 9 * * *", "config": {"configurable": {"mcp_servers": {}}}}, 422),
        ({"schedule": "0 9 * * *", "config": {"configurable": {"filter": {"year": 2024}}}}, 422),
        ({"schedule": "0 9 * * *", "config": {"configurable": {"output_schema": {"type": "array"}}}}, 422),
    ],
)
async def test_a_bad_cron_is_refused_with_the_reason(lg: LangGraphClient, fields: dict, status: int) -> None:
    body = {"input": QUESTION, **fields}
    assert await _status(lg.crons.create("agent", **body)) == status


async def test_a_cron_on_a_thread_that_does_not_exist_is_a_404(lg: LangGraphClient) -> None:
    made = lg.crons.create_for_thread("no-such-thread", "agent", schedule="* * * * *", input=QUESTION)
    assert await _status(made) == 404


async def _register_agent(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        guard = Guarded(CircuitBreaker("memory", 5, 1.0), RetryPolicy())
        await register(AssistantServiceStub(channel), {"agent": None}, guard=guard, timeout_s=10)


@pytest.fixture
async def pg_memory(database: str, tmp_path: Path) -> AsyncIterator[str]:
    """A memory service on PostgreSQL, the agent's graph registered in it."""
    async with serve_memory(memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")) as port:
        await _register_agent(f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"


async def test_a_cron_survives_a_restart_of_the_memory_service(
    serve: Callable[..., str], database: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = MemorySettings(
        MEMORY_HOST="127.0.0.1", MEMORY_PORT=port, DATABASE_URL=database, MEMORY_SQLITE_PATH=tmp_path / "u.sqlite"
    )
    client = get_client(url=f"{serve(MEMORY_TARGET=f'127.0.0.1:{port}')}/langgraph")
    try:
        async with serve_memory(settings):
            await _register_agent(f"127.0.0.1:{port}")
            made = await client.crons.create("agent", schedule="0 9 * * *", input=QUESTION)
        async with serve_memory(settings):
            for _ in range(100):  # the gateway's channel reconnects
                try:
                    found = await client.crons.search()
                    break
                except httpx.HTTPStatusError as exc:
                    assert exc.response.status_code == 503
                    await asyncio.sleep(0.1)
        assert [(c["cron_id"], c["next_run_date"]) for c in found] == [(made["cron_id"], made["next_run_date"])]
    finally:
        await client.aclose()


async def _runs(nc: NatsClient, namespace: str) -> list[RunRequested]:
    js, topology = nc.jetstream(), Topology(namespace)
    try:
        info = await js.stream_info(topology.runs_stream)
    except NotFoundError:
        return []
    state = info.state
    return [
        RunRequested.from_bytes((await js.get_msg(topology.runs_stream, seq)).data or b"")
        for seq in range(state.first_seq, state.last_seq + 1)
        if state.messages
    ]


async def test_a_due_cron_fires_once_per_tick_with_two_gateways_ticking(
    serve: Callable[..., str], pg_memory: str, database: str, nc: NatsClient, nats_namespace: str
) -> None:
    settings = {"MEMORY_TARGET": pg_memory, "GATEWAY_CRON_INTERVAL_S": "0.05"}
    first, _second = serve(**settings), serve(**settings)
    client = get_client(url=f"{first}/langgraph")
    try:
        cron = await client.crons.create("agent", schedule="* * * * *", input=QUESTION, metadata={"job": "digest"})
    finally:
        await client.aclose()
    for tick in range(1, 4):  # three ticks, each made due now by moving the cron's next run into the past
        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            await conn.execute("UPDATE threadline_crons SET next_run_at = now() - interval '1 second'")
        for _ in range(200):
            if len(await _runs(nc, nats_namespace)) >= tick:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # both tickers claimed many times meanwhile
        runs = await _runs(nc, nats_namespace)
        assert len(runs) == tick, [r.run_id for r in runs]
    assert len({r.run_id for r in runs}) == 3 and len({r.thread_id for r in runs}) == 3  # a new thread each
    assert all(r.metadata["cron_id"] == cron["cron_id"] and r.metadata["job"] == "digest" for r in runs)
    assert all(r.input == "What is new today?" and r.tenant_id == "default" for r in runs)
