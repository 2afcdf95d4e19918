"""``/api/v1/threads/{thread_id}``: a conversation's state, its history of checkpoints, and its deletion.

A thread is created by its first run (``POST /api/v1/query`` without a ``thread_id`` answers
with a new one); its checkpoints live in the memory service, which scopes every call to the
caller's tenant, so another tenant's thread is simply not found.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import grpc
import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1 import memory_pb2_grpc

from threadline_gateway.auth import caller
from threadline_gateway.errors import ApiError
from threadline_gateway.schemas import ID_PATTERN, ThreadState, error_responses

router = APIRouter(prefix="/api/v1/threads", tags=["threads"])
log = structlog.get_logger("threadline.gateway")
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]
# The agent's checkpointer writes values with LangGraph's serializer; this reads them back.
_serde = JsonPlusSerializer()
_TIMEOUT_S = 10.0


def _stub(request: Request) -> memory_pb2_grpc.CheckpointServiceStub:
    return request.app.state.memory


@asynccontextmanager
async def _memory_errors() -> AsyncIterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise ApiError(422, "invalid_request", exc.details() or "The request was refused.") from exc
        log.warning("memory unavailable", code=exc.code().name, error=exc.details())
        raise ApiError(
            503,
            "memory_unavailable",
            "Conversation memory is unavailable; try again shortly.",
            headers={"Retry-After": "2"},
        ) from exc


def _state(thread_id: str, item: pb.CheckpointTuple) -> ThreadState:
    checkpoint = json.loads(item.checkpoint_json)
    values = {
        channel: _serde.loads_typed((value.type, value.data))
        for channel, value in item.channel_values.items()
        if not channel.startswith(("branch:", "__"))
    }
    return ThreadState(
        thread_id=thread_id,
        checkpoint_id=item.config.checkpoint_id,
        parent_checkpoint_id=item.parent_config.checkpoint_id if item.HasField("parent_config") else None,
        created_at=checkpoint.get("ts"),
        metadata=json.loads(item.metadata_json) if item.metadata_json else {},
        values=jsonable_encoder(values),
    )


async def _latest(request: Request, thread_id: str) -> pb.CheckpointTuple | None:
    lookup = pb.GetTupleRequest(tenant_id=caller(request).tenant_id, config=pb.CheckpointConfig(thread_id=thread_id))
    async with _memory_errors():
        reply = await _stub(request).GetTuple(lookup, timeout=_TIMEOUT_S)
    return reply.tuple if reply.HasField("tuple") else None


@router.get("/{thread_id}/state", response_model=ThreadState, responses=error_responses(404, 503))
async def thread_state(thread_id: ThreadId, request: Request) -> ThreadState:
    """The thread's latest state: its messages (the question, tool calls and results, answers) and metadata."""
    latest = await _latest(request, thread_id)
    if latest is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    return _state(thread_id, latest)


@router.get("/{thread_id}/history", response_model=list[ThreadState], responses=error_responses(404, 503))
async def thread_history(
    thread_id: ThreadId,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(pattern=ID_PATTERN, description="A checkpoint id: only older ones.")] = None,
) -> list[Any]:
    """The thread's checkpoints, newest first: every step of every run, to inspect or to fork from."""
    listing = pb.ListRequest(
        tenant_id=caller(request).tenant_id,
        config=pb.CheckpointConfig(thread_id=thread_id, checkpoint_ns=""),
        limit=limit,
    )
    if before:
        listing.before.CopyFrom(pb.CheckpointConfig(thread_id=thread_id, checkpoint_ns="", checkpoint_id=before))
    async with _memory_errors():
        states = [_state(thread_id, item) async for item in _stub(request).List(listing, timeout=_TIMEOUT_S)]
    if not states and before is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    return states


@router.delete("/{thread_id}", status_code=204, responses=error_responses(404, 503))
async def delete_thread(thread_id: ThreadId, request: Request) -> Response:
    """Erase the thread: every checkpoint and pending write of it."""
    if await _latest(request, thread_id) is None:
        raise ApiError(404, "not_found", f"No thread {thread_id!r}.")
    deletion = pb.DeleteThreadRequest(tenant_id=caller(request).tenant_id, thread_id=thread_id)
    async with _memory_errors():
        await _stub(request).DeleteThread(deletion, timeout=_TIMEOUT_S)
    log.info("thread deleted", thread_id=thread_id)
    return Response(status_code=204)
