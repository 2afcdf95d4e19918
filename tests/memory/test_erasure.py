"""Erasure against a real memory service: a user's (or a whole tenant's) threads, checkpoints and
long-term memories are gone from PostgreSQL and from the Redis cache, other users and tenants keep
theirs, and the erasure is announced on NATS for the services that hold copies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import nats
import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.store.base import PutOp
from redis.asyncio import Redis
from threadline.events import DataErased
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import ThreadServiceStub
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.remote.store import RemoteStore
from threadline_memory.server import serve

from tests.conftest import NATS_URL, REDIS_URL
from tests.memory.conftest import echo_graph, memory_settings


async def _converse(saver: RemoteCheckpointSaver, threads: dict[str, str]) -> None:
    graph = echo_graph(saver)
    for thread_id, user in threads.items():
        config = {"configurable": {"thread_id": thread_id}, "metadata": {"user_id": user}}
        for text in ("my secret is tea", "again"):
            await graph.ainvoke({"messages": [HumanMessage(text)]}, config)
        await graph.aget_state(config)  # read (and cached) after the last write


async def test_erasing_a_user_counts_their_store_items(memory_target: str) -> None:
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    store = RemoteStore(target=memory_target, tenant_id="acme")
    try:
        await _converse(saver, {"ana-1": "ana", "bo-1": "bo"})
        # More than one page of the erasure's (500), written in batches of the most a call takes (1000).
        puts = [PutOp(("users", "ana", "memories"), f"m{i}", {"fact": f"ana {i}"}) for i in range(1100)]
        await store.abatch(puts[:1000])
        await store.abatch(puts[1000:])
        await store.aput(("users", "ana", "prefs"), "tone", {"value": "brief"})
        await store.aput(("users", "anabel", "memories"), "m0", {"fact": "a prefix, not ana"})
        await store.aput(("users", "bo", "memories"), "m0", {"fact": "bo"})

        async with grpc.aio.insecure_channel(memory_target) as channel:
            erased = await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="acme", user_id="ana"))

        assert (erased.threads, erased.store_items) == (1, 1101)
        assert await store.asearch(("users", "ana")) == []
        assert sorted(ns for ns in await store.alist_namespaces()) == [
            ("users", "anabel", "memories"),
            ("users", "bo", "memories"),
        ]
    finally:
        await saver.close()
        await store.close()


@pytest.fixture
async def erasing_service(database: str, nats_namespace: str, tmp_path: Path) -> AsyncIterator[str]:
    """A memory service on PostgreSQL with the Redis cache and NATS events on."""
    settings = memory_settings(
        database_url=database,
        sqlite_path=tmp_path / "unused.sqlite",
        REDIS_URL=REDIS_URL,
        NATS_URL=NATS_URL,
        nats_namespace=nats_namespace,
    )
    async with serve(settings) as port:
        yield f"127.0.0.1:{port}"


def _rows(database: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(database, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def _left_of(database: str, tenant: str, thread_like: str, store_like: str) -> dict[str, int]:
    """What the database still holds matching the patterns, table by table (read directly)."""
    thread_tables = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
    left = {
        table: _rows(database, f"SELECT count(*) FROM {table} WHERE thread_id LIKE %s", f"{tenant}:{thread_like}")[0][0]
        for table in thread_tables
    }
    left["threadline_threads"] = _rows(
        database,
        "SELECT count(*) FROM threadline_threads WHERE tenant_id = %s AND thread_id LIKE %s",
        tenant,
        thread_like,
    )[0][0]
    left["store"] = _rows(database, "SELECT count(*) FROM store WHERE prefix LIKE %s", store_like)[0][0]
    return left


async def _cache_keys(prefix: str) -> dict[str, bytes | None]:
    redis = Redis.from_url(REDIS_URL)
    try:
        return {key.decode(): await redis.get(key) async for key in redis.scan_iter(match=f"{prefix}:*")}
    finally:
        await redis.aclose()


async def test_nothing_of_an_erased_user_is_left_and_the_erasure_is_announced(
    erasing_service: str, database: str, nats_namespace: str
) -> None:
    acme_saver = RemoteCheckpointSaver(target=erasing_service, tenant_id="acme")
    acme = RemoteStore(target=erasing_service, tenant_id="acme")
    globex_saver = RemoteCheckpointSaver(target=erasing_service, tenant_id="globex")
    globex = RemoteStore(target=erasing_service, tenant_id="globex")
    nc = await nats.connect(NATS_URL)
    cache_prefix = f"{nats_namespace}:memory"
    try:
        await _converse(acme_saver, {"ana-1": "ana", "ana-2": "ana", "bo-1": "bo"})
        await _converse(globex_saver, {"ana-1": "ana"})
        await acme.aput(("users", "ana", "memories"), "m0", {"fact": "likes tea"})
        await acme.aput(("users", "ana", "memories"), "m1", {"fact": "lives in Porto"}, ttl=60)
        await acme.aput(("users", "bo", "memories"), "m0", {"fact": "likes coffee"})
        await acme.aput(("teams", "red"), "charter", {"text": "tenant-wide"})
        await globex.aput(("users", "ana", "memories"), "m0", {"fact": "another tenant's ana"})

        before = _left_of(database, "acme", "ana-%", "acme.users.ana.%")
        assert all(before.values()), before  # every table really held some of ana's data
        assert any(":latest:" in key and "acme:ana-1" in key for key in await _cache_keys(cache_prefix))

        events = await nc.subscribe(f"{nats_namespace}.erasure")
        async with grpc.aio.insecure_channel(erasing_service) as channel:
            stub = ThreadServiceStub(channel)
            erased = await stub.Erase(pb.EraseRequest(tenant_id="acme", user_id="ana"))
            assert (erased.threads, erased.store_items) == (2, 2)

            assert _left_of(database, "acme", "ana-%", "acme.users.ana%") == dict.fromkeys(before, 0)
            assert _rows(database, "SELECT count(*) FROM store WHERE value::text LIKE '%%Porto%%'")[0][0] == 0
            # Nothing cached of ana's threads; only generation counters (plain numbers) may name them.
            left = {k: v for k, v in (await _cache_keys(cache_prefix)).items() if "acme:ana-" in k}
            assert all(":gen:" in key and value is not None and value.isdigit() for key, value in left.items()), left

            announced = DataErased.from_bytes((await events.next_msg(timeout=5)).data)
            assert (announced.tenant_id, announced.user_id) == ("acme", "ana")
            assert (announced.threads, announced.store_items) == (2, 2)

            # Everyone else keeps everything.
            assert _left_of(database, "acme", "bo-%", "acme.users.bo%")["checkpoints"] > 0
            assert await acme.aget(("users", "bo", "memories"), "m0") is not None
            assert await acme.aget(("teams", "red"), "charter") is not None
            assert _left_of(database, "globex", "ana-%", "globex.users.ana%")["store"] == 1
            assert await globex_saver.aget_tuple({"configurable": {"thread_id": "ana-1"}}) is not None

            # Then the whole tenant.
            erased = await stub.Erase(pb.EraseRequest(tenant_id="acme"))
            assert (erased.threads, erased.store_items) == (1, 2)
            assert _left_of(database, "acme", "%", "acme%") == dict.fromkeys(before, 0)
            announced = DataErased.from_bytes((await events.next_msg(timeout=5)).data)
            assert (announced.tenant_id, announced.user_id, announced.threads) == ("acme", None, 1)
            assert _left_of(database, "globex", "%", "globex%")["store"] == 1

        # The event is durable too: it sits on the ERASURE stream for a service that was down.
        stream = await nc.jetstream().stream_info(f"{nats_namespace.upper()}_ERASURE")
        assert stream.state.messages == 2
        stored = await nc.jetstream().get_last_msg(stream.config.name, f"{nats_namespace}.erasure")
        assert json.loads(stored.data)["tenant_id"] == "acme"
        await nc.jetstream().delete_stream(stream.config.name)
    finally:
        for closing in (acme_saver, acme, globex_saver, globex):
            await closing.close()
        await nc.close()


async def test_an_erasure_nats_did_not_take_is_unavailable_and_can_be_repeated(
    database: str, nats_namespace: str, tmp_path: Path
) -> None:
    settings = memory_settings(
        database_url=database,
        sqlite_path=tmp_path / "unused.sqlite",
        NATS_URL="nats://127.0.0.1:1",  # nothing listens there
        nats_namespace=nats_namespace,
    )
    async with serve(settings) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        saver = RemoteCheckpointSaver(target=f"127.0.0.1:{port}", tenant_id="acme")
        await _converse(saver, {"ana-1": "ana"})
        await saver.close()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="acme", user_id="ana"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The data went first; the caller retries until the event goes out too.
        assert _left_of(database, "acme", "%", "acme%")["checkpoints"] == 0
