"""The ThreadService against a real memory service, on SQLite and on PostgreSQL: threads are
registered by their checkpoints or created outright, listed by metadata, copied with their
history, erased per user, and never visible to another tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psycopg
import pytest
from langchain_core.messages import HumanMessage
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import ThreadServiceStub
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_memory.server import serve

from tests.memory.conftest import echo_graph, memory_settings


@pytest.fixture
async def threads(memory_target: str) -> AsyncIterator[ThreadServiceStub]:
    async with grpc.aio.insecure_channel(memory_target) as channel:
        yield ThreadServiceStub(channel)


async def _create(stub: ThreadServiceStub, tenant: str, thread_id: str = "", **metadata: object) -> pb.Thread:
    request = pb.CreateThreadRequest(tenant_id=tenant, thread_id=thread_id, metadata_json=json.dumps(metadata).encode())
    return await stub.CreateThread(request)


async def test_create_get_update_and_a_second_create_is_already_exists(threads: ThreadServiceStub) -> None:
    created = await _create(threads, "acme", owner="ana")
    uuid.UUID(created.thread_id)
    assert json.loads(created.metadata_json) == {"owner": "ana"}

    updated = await threads.UpdateThread(
        pb.UpdateThreadRequest(tenant_id="acme", thread_id=created.thread_id, metadata_json=b'{"topic": "faiss"}')
    )
    assert json.loads(updated.metadata_json) == {"owner": "ana", "topic": "faiss"}
    assert updated.updated_at >= created.updated_at
    assert updated.created_at == created.created_at

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _create(threads, "acme", created.thread_id)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    same = await threads.CreateThread(
        pb.CreateThreadRequest(tenant_id="acme", thread_id=created.thread_id, if_exists_do_nothing=True)
    )
    assert json.loads(same.metadata_json) == {"owner": "ana", "topic": "faiss"}


async def test_another_tenant_finds_nothing(threads: ThreadServiceStub) -> None:
    mine = await _create(threads, "acme", owner="ana")
    for call, request in [
        (threads.GetThread, pb.GetThreadRequest(tenant_id="globex", thread_id=mine.thread_id)),
        (threads.UpdateThread, pb.UpdateThreadRequest(tenant_id="globex", thread_id=mine.thread_id)),
        (threads.CopyThread, pb.CopyThreadRequest(tenant_id="globex", thread_id=mine.thread_id)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await threads.ListThreads(pb.ListThreadsRequest(tenant_id="globex"))
    assert list(listed.threads) == []
    erased = await threads.Erase(pb.EraseRequest(tenant_id="globex"))
    assert erased.threads == 0
    assert (await threads.GetThread(pb.GetThreadRequest(tenant_id="acme", thread_id=mine.thread_id))).thread_id


async def test_listing_filters_by_metadata_sorts_and_pages(threads: ThreadServiceStub) -> None:
    made = [await _create(threads, "acme", f"t{i}", team="red" if i % 2 else "blue", n=i) for i in range(5)]
    newest_first = await threads.ListThreads(pb.ListThreadsRequest(tenant_id="acme", limit=10))
    assert [t.thread_id for t in newest_first.threads] == [t.thread_id for t in reversed(made)]

    red = await threads.ListThreads(pb.ListThreadsRequest(tenant_id="acme", metadata_filter_json=b'{"team": "red"}'))
    assert [t.thread_id for t in red.threads] == ["t3", "t1"]

    pages = [
        await threads.ListThreads(
            pb.ListThreadsRequest(tenant_id="acme", limit=2, offset=offset, sort_by="thread_id", sort_order="asc")
        )
        for offset in (0, 2, 4)
    ]
    assert [[t.thread_id for t in page.threads] for page in pages] == [["t0", "t1"], ["t2", "t3"], ["t4"]]

    for bad in [
        pb.ListThreadsRequest(tenant_id="acme", sort_by="metadata; drop table x"),
        pb.ListThreadsRequest(tenant_id="acme", sort_order="sideways"),
        pb.ListThreadsRequest(tenant_id="acme", limit=5000),
        pb.ListThreadsRequest(tenant_id="acme", metadata_filter_json=b"[1]"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await threads.ListThreads(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_run_registers_its_thread_and_a_copy_carries_the_history_on(
    memory_target: str, threads: ThreadServiceStub
) -> None:
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    try:
        graph = echo_graph(saver)
        thread_id = f"run-{uuid.uuid4().hex[:8]}"
        config = {"configurable": {"thread_id": thread_id}, "metadata": {"assistant_id": "docs", "user_id": "ana"}}
        await graph.ainvoke({"messages": [HumanMessage("hello")]}, config)

        registered = await threads.GetThread(pb.GetThreadRequest(tenant_id="acme", thread_id=thread_id))
        assert json.loads(registered.metadata_json) == {"assistant_id": "docs", "user_id": "ana"}

        copy = await threads.CopyThread(pb.CopyThreadRequest(tenant_id="acme", thread_id=thread_id))
        copied = {"configurable": {"thread_id": copy.thread_id}}
        assert len([s async for s in graph.aget_state_history(copied)]) == len(
            [s async for s in graph.aget_state_history(config)]
        )
        result = await graph.ainvoke({"messages": [HumanMessage("again")]}, copied)
        assert [m.content for m in result["messages"]] == ["hello", "seen 1", "again", "seen 3"]
        original = await graph.aget_state(config)
        assert len(original.values["messages"]) == 2
    finally:
        await saver.close()


async def test_erasing_a_user_removes_their_threads_and_checkpoints_only(
    memory_target: str, threads: ThreadServiceStub
) -> None:
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    try:
        graph = echo_graph(saver)
        for thread_id, user in [("ana-1", "ana"), ("ana-2", "ana"), ("bo-1", "bo")]:
            config = {"configurable": {"thread_id": thread_id}, "metadata": {"user_id": user}}
            await graph.ainvoke({"messages": [HumanMessage("hi")]}, config)

        erased = await threads.Erase(pb.EraseRequest(tenant_id="acme", user_id="ana"))

        assert erased.threads == 2
        left = await threads.ListThreads(pb.ListThreadsRequest(tenant_id="acme"))
        assert [t.thread_id for t in left.threads] == ["bo-1"]
        assert await saver.aget_tuple({"configurable": {"thread_id": "ana-1"}}) is None
        assert await saver.aget_tuple({"configurable": {"thread_id": "bo-1"}}) is not None
    finally:
        await saver.close()


async def test_threads_written_before_the_registry_are_registered_by_the_migration(
    database: str, tmp_path: Path
) -> None:
    settings = memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")
    async with serve(settings) as port:
        saver = RemoteCheckpointSaver(target=f"127.0.0.1:{port}", tenant_id="acme")
        await echo_graph(saver).ainvoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "old"}})
        await saver.close()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DROP TABLE threadline_threads")
        conn.execute("DROP TABLE threadline_memory_migrations")

    async with serve(settings) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        listed = await ThreadServiceStub(channel).ListThreads(pb.ListThreadsRequest(tenant_id="acme"))
    assert [t.thread_id for t in listed.threads] == ["old"]
