"""PutBatch: a run's checkpoint writes in one round trip, in order, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import CheckpointServiceStub
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver, write_behind

from tests.memory.conftest import echo_graph


def _put(tenant: str, thread: str, checkpoint_id: str, step: int) -> pb.CheckpointWrite:
    checkpoint = {**empty_checkpoint(), "id": checkpoint_id}
    checkpoint.pop("channel_values")
    return pb.CheckpointWrite(
        put=pb.PutRequest(
            tenant_id=tenant,
            config=pb.CheckpointConfig(thread_id=thread, checkpoint_ns=""),
            checkpoint_json=json.dumps(checkpoint).encode(),
            metadata_json=json.dumps({"source": "loop", "step": step}).encode(),
            new_versions_json=b"{}",
        )
    )


def _writes(tenant: str, thread: str, checkpoint_id: str) -> pb.CheckpointWrite:
    return pb.CheckpointWrite(
        writes=pb.PutWritesRequest(
            tenant_id=tenant,
            config=pb.CheckpointConfig(thread_id=thread, checkpoint_ns="", checkpoint_id=checkpoint_id),
            writes=[pb.PendingWrite(channel="out", value=pb.TypedValue(type="json", data=b'"done"'))],
            task_id="task-1",
        )
    )


async def test_a_batch_is_stored_in_order_with_a_reply_per_put(memory_target: str) -> None:
    thread, first, second = uuid.uuid4().hex, str(uuid6()), str(uuid6())  # ids that sort as they were made
    items = [_put("acme", thread, first, 0), _writes("acme", thread, first), _put("acme", thread, second, 1)]
    async with grpc.aio.insecure_channel(memory_target) as channel:
        stub = CheckpointServiceStub(channel)
        reply = await stub.PutBatch(pb.PutBatchRequest(items=items))
        assert [p.config.checkpoint_id for p in reply.puts] == [first, second]
        assert {p.config.thread_id for p in reply.puts} == {thread}  # the tenant's prefix is not shown
        listed = [
            t async for t in stub.List(pb.ListRequest(tenant_id="acme", config=pb.CheckpointConfig(thread_id=thread)))
        ]
    assert [t.config.checkpoint_id for t in listed] == [second, first]
    assert [(w.task_id, w.channel) for w in listed[1].pending_writes] == [("task-1", "out")]


async def test_a_malformed_item_fails_the_batch_before_anything_is_stored(memory_target: str) -> None:
    thread = uuid.uuid4().hex
    good = _put("acme", thread, str(uuid.uuid4()), 0)
    bad = _writes("acme", thread, "")  # writes that name no checkpoint
    async with grpc.aio.insecure_channel(memory_target) as channel:
        stub = CheckpointServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PutBatch(pb.PutBatchRequest(items=[good, bad]))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "checkpoint_id" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.PutBatch(pb.PutBatchRequest(items=[pb.CheckpointWrite()]))
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        found = await stub.GetTuple(pb.GetTupleRequest(tenant_id="acme", config=pb.CheckpointConfig(thread_id=thread)))
    assert not found.HasField("tuple")


async def test_a_tenant_s_batch_cannot_write_another_s_thread(memory_target: str) -> None:
    thread, checkpoint_id = uuid.uuid4().hex, str(uuid.uuid4())
    async with grpc.aio.insecure_channel(memory_target) as channel:
        stub = CheckpointServiceStub(channel)
        await stub.PutBatch(pb.PutBatchRequest(items=[_put("acme", thread, checkpoint_id, 0)]))
        other = await stub.GetTuple(
            pb.GetTupleRequest(tenant_id="globex", config=pb.CheckpointConfig(thread_id=thread))
        )
    assert not other.HasField("tuple")


class _Counting(RemoteCheckpointSaver):
    """The saver, counting the calls that carry its writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    async def _put_batch(self, request: pb.PutBatchRequest) -> pb.PutBatchResponse:
        self.batches.append(len(request.items))
        return await super()._put_batch(request)


async def test_a_run_s_writes_share_calls_and_leave_the_same_thread(memory_target: str) -> None:
    batched = _Counting(target=memory_target, tenant_id="acme")
    one_by_one = RemoteCheckpointSaver(target=memory_target, tenant_id="acme", batch_writes=False)
    try:
        states = []
        for saver in (batched, one_by_one):
            graph = echo_graph(saver)
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            for question in ("hello", "again"):
                await graph.ainvoke({"messages": [HumanMessage(question)]}, config)
            history = [s async for s in graph.aget_state_history(config)]
            states.append(
                (
                    [m.content for m in (await graph.aget_state(config)).values["messages"]],
                    [(s.metadata or {}).get("step") for s in history],
                    [s.next for s in history],
                )
            )
        assert states[0] == states[1]
        # Two runs of three checkpoints and two tasks' writes each: ten writes, in fewer calls.
        assert sum(batched.batches) == 10
        assert len(batched.batches) < 10
    finally:
        await batched.close()
        await one_by_one.close()


async def test_concurrent_threads_are_written_apart_and_a_failure_reaches_its_callers(memory_target: str) -> None:
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    try:
        threads = [uuid.uuid4().hex for _ in range(4)]
        checkpoint = empty_checkpoint()
        configs = await asyncio.gather(
            *(
                saver.aput({"configurable": {"thread_id": t, "checkpoint_ns": ""}}, checkpoint, {"step": 0}, {})
                for t in threads
            )
        )
        assert [c["configurable"]["thread_id"] for c in configs] == threads
        for thread in threads:
            found = await saver.aget_tuple({"configurable": {"thread_id": thread}})
            assert found is not None and found.checkpoint["id"] == checkpoint["id"]
        # Writes that name no checkpoint: the service refuses them, and the caller hears it.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await saver.aput_writes({"configurable": {"thread_id": threads[0], "checkpoint_ns": ""}}, [("a", 1)], "t")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await saver.close()


async def test_behind_a_run_its_puts_return_at_once_and_a_flush_stores_them(memory_target: str) -> None:
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    reader = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    try:
        graph = echo_graph(saver)
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        with write_behind(saver):
            await graph.ainvoke({"messages": [HumanMessage("hello")]}, config)
        await saver.aflush(config)
        stored = await reader.aget_tuple(config)  # another saver: what the memory service holds
        assert stored is not None
        assert [m.content for m in stored.checkpoint["channel_values"]["messages"]] == ["hello", "seen 1"]
    finally:
        await saver.close()
        await reader.close()


async def test_a_write_behind_failure_is_raised_by_the_flush(memory_target: str) -> None:
    saver = RemoteCheckpointSaver(target=memory_target)
    config = {"configurable": {"thread_id": uuid.uuid4().hex, "checkpoint_ns": "", "tenant_id": "not a tenant!"}}
    try:
        with write_behind(saver):
            await saver.aput(config, empty_checkpoint(), {"step": 0}, {})  # returns before the service refuses it
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await saver.aflush(config)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await saver.aflush(config)  # reported once
    finally:
        await saver.close()
