"""The gateway's client of the memory service: threads and their checkpoints, decoded for the API.

Every call names the caller's tenant; the memory service scopes it, so another tenant's thread
reads as absent. gRPC failures become API errors here, once: bad input a 422, an absent thread
a 404, anything else a 503 with Retry-After, never a hang (every call has a deadline).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from fastapi.encoders import jsonable_encoder
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import CheckpointServiceStub, ThreadServiceStub

from threadline_gateway.errors import ApiError

log = structlog.get_logger("threadline.gateway")
TIMEOUT_S = 10.0
# The pending-write channel where LangGraph keeps what interrupt() waits on (private in LangGraph 1.x).
INTERRUPT = "__interrupt__"
# An erasure walks every thread of a tenant, a step per thread; it may take a while, and is safe to repeat.
ERASE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a thread, its values decoded to JSON-ready data."""

    thread_id: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    created_at: str | None
    metadata: dict[str, Any]
    values: dict[str, Any]
    interrupts: list[dict[str, Any]] = field(default_factory=list)  # what a paused run waits on: value and id


@dataclass(frozen=True)
class Thread:
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def memory_errors(thread_id: str | None = None) -> AsyncIterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise ApiError(422, "invalid_request", exc.details() or "The request was refused.") from exc
        if code == grpc.StatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"No thread {thread_id!r}.") from exc
        if code == grpc.StatusCode.ALREADY_EXISTS:
            raise ApiError(409, "thread_exists", f"Thread {thread_id!r} already exists.") from exc
        log.warning("memory unavailable", code=code.name, error=exc.details())
        raise ApiError(
            503,
            "memory_unavailable",
            "Conversation memory is unavailable; try again shortly.",
            headers={"Retry-After": "2"},
        ) from exc


class Memory:
    """Checkpoints and threads of the memory service, on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._checkpoints = CheckpointServiceStub(channel)
        self._threads = ThreadServiceStub(channel)
        # The agents write values with LangGraph's serializer; this reads them back.
        self._serde = JsonPlusSerializer()

    async def latest(self, tenant_id: str, thread_id: str, checkpoint_id: str = "") -> Checkpoint | None:
        """The thread's latest checkpoint (or the one named), None if there is none."""
        config = pb.CheckpointConfig(thread_id=thread_id, checkpoint_ns="", checkpoint_id=checkpoint_id)
        async with memory_errors(thread_id):
            reply = await self._checkpoints.GetTuple(
                pb.GetTupleRequest(tenant_id=tenant_id, config=config), timeout=TIMEOUT_S
            )
        return self._decode(thread_id, reply.tuple) if reply.HasField("tuple") else None

    async def history(
        self, tenant_id: str, thread_id: str, *, limit: int, before: str | None = None
    ) -> list[Checkpoint]:
        """The thread's checkpoints, newest first."""
        listing = pb.ListRequest(
            tenant_id=tenant_id, config=pb.CheckpointConfig(thread_id=thread_id, checkpoint_ns=""), limit=limit
        )
        if before:
            listing.before.CopyFrom(pb.CheckpointConfig(thread_id=thread_id, checkpoint_ns="", checkpoint_id=before))
        async with memory_errors(thread_id):
            return [self._decode(thread_id, item) async for item in self._checkpoints.List(listing, timeout=TIMEOUT_S)]

    async def delete_thread(self, tenant_id: str, thread_id: str) -> None:
        async with memory_errors(thread_id):
            await self._checkpoints.DeleteThread(
                pb.DeleteThreadRequest(tenant_id=tenant_id, thread_id=thread_id), timeout=TIMEOUT_S
            )

    async def create_thread(
        self, tenant_id: str, thread_id: str, metadata: dict[str, Any], *, if_exists_do_nothing: bool
    ) -> Thread:
        request = pb.CreateThreadRequest(
            tenant_id=tenant_id,
            thread_id=thread_id,
            metadata_json=json.dumps(metadata).encode(),
            if_exists_do_nothing=if_exists_do_nothing,
        )
        async with memory_errors(thread_id):
            return _thread(await self._threads.CreateThread(request, timeout=TIMEOUT_S))

    async def get_thread(self, tenant_id: str, thread_id: str) -> Thread:
        """The thread; a 404 when it does not exist (or is another tenant's)."""
        async with memory_errors(thread_id):
            reply = await self._threads.GetThread(
                pb.GetThreadRequest(tenant_id=tenant_id, thread_id=thread_id), timeout=TIMEOUT_S
            )
        return _thread(reply)

    async def update_thread(self, tenant_id: str, thread_id: str, metadata: dict[str, Any]) -> Thread:
        request = pb.UpdateThreadRequest(
            tenant_id=tenant_id, thread_id=thread_id, metadata_json=json.dumps(metadata).encode()
        )
        async with memory_errors(thread_id):
            return _thread(await self._threads.UpdateThread(request, timeout=TIMEOUT_S))

    async def copy_thread(self, tenant_id: str, thread_id: str) -> Thread:
        async with memory_errors(thread_id):
            reply = await self._threads.CopyThread(
                pb.CopyThreadRequest(tenant_id=tenant_id, thread_id=thread_id), timeout=TIMEOUT_S
            )
        return _thread(reply)

    async def list_threads(
        self,
        tenant_id: str,
        *,
        metadata: dict[str, Any],
        limit: int,
        offset: int,
        sort_by: str = "updated_at",
        sort_order: str = "desc",
    ) -> list[Thread]:
        request = pb.ListThreadsRequest(
            tenant_id=tenant_id,
            metadata_filter_json=json.dumps(metadata).encode(),
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )
        async with memory_errors():
            reply = await self._threads.ListThreads(request, timeout=TIMEOUT_S)
        return [_thread(t) for t in reply.threads]

    async def erase(self, tenant_id: str, user_id: str | None) -> tuple[int, int]:
        """Erase a user's (or, without one, the whole tenant's) threads and long-term memories:
        (threads, store items) erased. The memory service announces it on NATS for the others."""
        async with memory_errors():
            reply = await self._threads.Erase(
                pb.EraseRequest(tenant_id=tenant_id, user_id=user_id or ""), timeout=ERASE_TIMEOUT_S
            )
        return reply.threads, reply.store_items

    def _decode(self, thread_id: str, item: pb.CheckpointTuple) -> Checkpoint:
        checkpoint = json.loads(item.checkpoint_json)
        values = {
            channel: self._serde.loads_typed((value.type, value.data))
            for channel, value in item.channel_values.items()
            if not channel.startswith(("branch:", "__"))
        }
        return Checkpoint(
            thread_id=thread_id,
            checkpoint_id=item.config.checkpoint_id,
            parent_checkpoint_id=item.parent_config.checkpoint_id if item.HasField("parent_config") else None,
            created_at=checkpoint.get("ts"),
            metadata=json.loads(item.metadata_json) if item.metadata_json else {},
            values=jsonable_encoder(values),
            interrupts=[
                jsonable_encoder(interrupt)
                for write in item.pending_writes
                if write.channel == INTERRUPT
                for interrupt in self._serde.loads_typed((write.value.type, write.value.data))
            ],
        )


def _thread(reply: pb.Thread) -> Thread:
    return Thread(
        thread_id=reply.thread_id,
        created_at=reply.created_at,
        updated_at=reply.updated_at,
        metadata=json.loads(reply.metadata_json) if reply.metadata_json else {},
    )
