"""The remote saver against a real memory service: a LangGraph graph keeps its threads there,
per tenant, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from itertools import pairwise
from pathlib import Path

import grpc
import psycopg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import CheckpointServiceStub, StoreServiceStub, ThreadServiceStub
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_memory.server import serve

from tests.conftest import free_port
from tests.memory.conftest import memory_settings


def _graph(saver: RemoteCheckpointSaver) -> CompiledStateGraph:
    def reply(state: MessagesState) -> dict:
        return {"messages": [AIMessage(f"I have seen {len(state['messages'])} messages")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


def _thread(tenant: str | None = None) -> RunnableConfig:
    configurable = {"thread_id": f"thread-{uuid.uuid4().hex[:8]}"}
    if tenant:
        configurable["tenant_id"] = tenant
    return {"configurable": configurable}


async def test_a_graph_continues_its_thread_and_keeps_the_history(saver: RemoteCheckpointSaver) -> None:
    graph = _graph(saver)
    config = _thread()
    await graph.ainvoke({"messages": [HumanMessage("hello")]}, config)
    result = await graph.ainvoke({"messages": [HumanMessage("again")]}, config)

    assert [m.content for m in result["messages"]] == [
        "hello",
        "I have seen 1 messages",
        "again",
        "I have seen 3 messages",
    ]
    state = await graph.aget_state(config)
    assert [m.content for m in state.values["messages"]][-1] == "I have seen 3 messages"
    assert state.config["configurable"]["thread_id"] == config["configurable"]["thread_id"]

    history = [s async for s in graph.aget_state_history(config)]
    # Each run: its input, then the graph starting, then the reply; newest first, each the child of the next.
    assert [s.metadata["step"] for s in history] == [4, 3, 2, 1, 0, -1]
    assert [len(s.values.get("messages", [])) for s in history] == [4, 3, 2, 2, 1, 0]
    for newer, older in pairwise(history):
        assert newer.parent_config["configurable"]["checkpoint_id"] == older.config["configurable"]["checkpoint_id"]
    # An earlier snapshot's config reads that point in time back, in the same tenant.
    first_reply = next(s for s in history if len(s.values.get("messages", [])) == 2)
    assert len((await graph.aget_state(first_reply.config)).values["messages"]) == 2


async def test_values_and_pending_writes_round_trip_unchanged(saver: RemoteCheckpointSaver) -> None:
    config = _thread()
    config["configurable"]["checkpoint_ns"] = ""
    checkpoint = empty_checkpoint()
    values = {"messages": [HumanMessage("hi", id="1")], "when": dt.datetime(2024, 5, 1, tzinfo=dt.UTC), "n": 3}
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = {k: saver.get_next_version(None, None) for k in values}
    saved = await saver.aput(config, checkpoint, {"source": "input", "step": -1}, checkpoint["channel_versions"])
    await saver.aput_writes(saved, [("messages", [AIMessage("partial")]), ("tags", {"a", "b"})], task_id="task-1")

    found = await saver.aget_tuple(saved)
    assert found is not None
    assert found.checkpoint["id"] == checkpoint["id"]
    assert found.checkpoint["channel_values"] == values
    assert found.metadata == {"source": "input", "step": -1}
    assert found.pending_writes == [("task-1", "messages", [AIMessage("partial")]), ("task-1", "tags", {"a", "b"})]
    assert found.config["configurable"]["tenant_id"] == "acme"

    # The blocking methods reach the same data (run in a thread: the server shares this event loop).
    assert (await asyncio.to_thread(saver.get_tuple, saved)).checkpoint == found.checkpoint  # type: ignore[union-attr]
    listed = await asyncio.to_thread(lambda: list(saver.list(config)))
    assert [t.checkpoint["id"] for t in listed] == [checkpoint["id"]]


async def test_a_sync_graph_uses_the_blocking_methods(saver: RemoteCheckpointSaver) -> None:
    graph = _graph(saver)
    config = _thread()

    def converse() -> list[str]:
        graph.invoke({"messages": [HumanMessage("hello")]}, config)
        result = graph.invoke({"messages": [HumanMessage("again")]}, config)
        history = list(graph.get_state_history(config))
        saver.delete_thread(config["configurable"]["thread_id"])
        assert len(history) == 6
        return [m.content for m in result["messages"]]

    # In a thread: the server runs on this test's event loop, which a blocking call must not hold.
    assert (await asyncio.to_thread(converse))[-1] == "I have seen 3 messages"
    assert await saver.aget_tuple(config) is None


async def test_list_filters_by_metadata_before_and_limit(saver: RemoteCheckpointSaver) -> None:
    graph = _graph(saver)
    config = _thread()
    await graph.ainvoke({"messages": [HumanMessage("hello")]}, config)
    everything = [t async for t in saver.alist(config)]
    assert len(everything) == 3

    inputs = [t async for t in saver.alist(config, filter={"source": "input"})]
    assert [t.metadata["source"] for t in inputs] == ["input"]
    older = [t.checkpoint["id"] async for t in saver.alist(config, before=everything[0].config)]
    assert older == [t.checkpoint["id"] for t in everything[1:]]
    newest_two = [t.checkpoint["id"] async for t in saver.alist(config, limit=2)]
    assert newest_two == [t.checkpoint["id"] for t in everything[:2]]


async def test_a_tenant_never_reaches_another_tenants_thread(memory_target: str) -> None:
    acme = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    rival = RemoteCheckpointSaver(target=memory_target, tenant_id="rival")
    try:
        config = _thread()
        await _graph(acme).ainvoke({"messages": [HumanMessage("secret")]}, config)
        assert await acme.aget_tuple(config) is not None

        assert await rival.aget_tuple(config) is None
        assert [t async for t in rival.alist(config)] == []
        assert [t async for t in rival.alist(None)] == []
        await rival.adelete_thread(config["configurable"]["thread_id"])
        assert await acme.aget_tuple(config) is not None

        # The same thread id in the other tenant is a different thread.
        await _graph(rival).ainvoke({"messages": [HumanMessage("mine")]}, config)
        ours = await acme.aget_tuple(config)
        assert ours is not None and ours.checkpoint["channel_values"]["messages"][0].content == "secret"
        theirs = [t async for t in rival.alist(None)]
        assert {t.config["configurable"]["thread_id"] for t in theirs} == {config["configurable"]["thread_id"]}
        seen = {m.content for t in theirs for m in t.checkpoint["channel_values"].get("messages", [])}
        assert seen == {"mine", "I have seen 1 messages"}

        # The tenant may also ride in the run's config instead of the saver's default.
        assert await rival.aget_tuple({"configurable": {**config["configurable"], "tenant_id": "acme"}}) is not None
    finally:
        await acme.close()
        await rival.close()


async def test_deleting_a_thread_removes_its_checkpoints(saver: RemoteCheckpointSaver) -> None:
    graph = _graph(saver)
    kept, deleted = _thread(), _thread()
    for config in (kept, deleted):
        await graph.ainvoke({"messages": [HumanMessage("hello")]}, config)

    await saver.adelete_thread(deleted["configurable"]["thread_id"])

    assert await saver.aget_tuple(deleted) is None
    assert [t async for t in saver.alist(deleted)] == []
    assert await saver.aget_tuple(kept) is not None
    assert (await graph.aget_state(deleted)).values == {}


async def test_a_malformed_tenant_is_invalid_argument(memory_target: str) -> None:
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="not a tenant!")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await saver.aget_tuple(_thread())
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tenant_id" in (caught.value.details() or "")
    finally:
        await saver.close()


async def test_every_memory_service_refuses_the_tenants_the_gateway_refuses(memory_target: str) -> None:
    """One rule for every service (threadline.ids), the gateway's: a leading '-' or '_' is refused too."""
    async with grpc.aio.insecure_channel(memory_target) as channel:
        checkpoints, threads, store = (
            CheckpointServiceStub(channel),
            ThreadServiceStub(channel),
            StoreServiceStub(channel),
        )
        for tenant in ["-x", "_x", "acme\n", "x" * 65, ""]:
            for call, request in [
                (checkpoints.GetTuple, pb.GetTupleRequest(tenant_id=tenant, config=pb.CheckpointConfig(thread_id="t"))),
                (threads.ListThreads, pb.ListThreadsRequest(tenant_id=tenant)),
                (store.Batch, pb.StoreBatchRequest(tenant_id=tenant)),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call(request)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, tenant
                assert "tenant_id must be" in (refused.value.details() or "")


async def test_an_unreachable_database_is_unavailable_quickly(tmp_path: Path) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings = memory_settings(database_url=closed, sqlite_path=tmp_path / "unused.sqlite", MEMORY_DB_TIMEOUT_S=1.0)
    async with serve(settings) as port:
        saver = RemoteCheckpointSaver(target=f"127.0.0.1:{port}", tenant_id="acme")
        try:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await saver.aget_tuple(_thread())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "PostgreSQL" in (caught.value.details() or "")
            assert time.monotonic() - started < 5
        finally:
            await saver.close()


async def test_killed_database_connections_are_replaced(database: str, tmp_path: Path) -> None:
    async with serve(memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")) as port:
        saver = RemoteCheckpointSaver(target=f"127.0.0.1:{port}", tenant_id="acme")
        try:
            config = _thread()
            await _graph(saver).ainvoke({"messages": [HumanMessage("hello")]}, config)
            with psycopg.connect(database, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t"
                ).fetchone()
            assert killed and killed[0] >= 1
            assert await saver.aget_tuple(config) is not None
        finally:
            await saver.close()
