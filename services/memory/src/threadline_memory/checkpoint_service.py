"""The gRPC CheckpointService: validates requests, scopes them to a tenant, runs them on the storage.

Tenancy is enforced here, below any caller: a thread is stored as
``"{tenant_id}:{thread_id}"`` and the prefix is stripped from every reply, so a
request can only ever name (and a listing only ever return) its own tenant's threads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any, cast

import grpc
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from threadline.grpc import BadRequest, abort_on_error
from threadline.ids import check_tenant_id
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc

from threadline_memory.cache import LatestCheckpointCache
from threadline_memory.fields import json_object, scoped
from threadline_memory.serde import Opaque
from threadline_memory.storage import Storage

SERVICE_NAME = memory_pb2.DESCRIPTOR.services_by_name["CheckpointService"].full_name
# For values the saver kept as plain JSON instead of passing through the serializer
# (e.g. primitives a PostgreSQL saver in the same database inlined); callers decode them as usual.
_JSONPLUS = JsonPlusSerializer()


class CheckpointServicer(memory_pb2_grpc.CheckpointServiceServicer):
    def __init__(self, storage: Storage, cache: LatestCheckpointCache | None = None) -> None:
        self._storage = storage
        self._cache = cache

    async def GetTuple(self, request: memory_pb2.GetTupleRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            config = _config_in(tenant, request.config)
            thread, namespace = config["configurable"]["thread_id"], config["configurable"]["checkpoint_ns"]
            cache_key = None
            if self._cache is not None and not request.config.checkpoint_id:
                cached, cache_key = await self._cache.get(thread, namespace)
                if cached is not None:
                    return memory_pb2.GetTupleResponse(tuple=memory_pb2.CheckpointTuple.FromString(cached))
            found = await self._storage.run("get_tuple", lambda saver: saver.aget_tuple(config))
        if found is None:
            return memory_pb2.GetTupleResponse()
        item = _tuple_out(tenant, found)
        if cache_key is not None:
            await self._cache.put(cache_key, item.SerializeToString())  # type: ignore[union-attr]
        return memory_pb2.GetTupleResponse(tuple=item)

    async def _written(self, thread: str) -> None:
        if self._cache is not None:
            await self._cache.invalidate(thread)

    async def List(
        self, request: memory_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[memory_pb2.CheckpointTuple]:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            config = _config_in(tenant, request.config, any_namespace=True) if request.HasField("config") else None
            metadata_filter = json_object(request.filter_json, "filter_json") if request.filter_json else None
            before = _before(request.before) if request.HasField("before") else None
            if request.limit < 0:
                raise BadRequest("limit must be 0 (no limit) or positive")
            try:
                found = await self._storage.run(
                    "list",
                    partial(
                        _list,
                        tenant=tenant,
                        config=config,
                        filter=metadata_filter,
                        before=before,
                        limit=request.limit or None,
                    ),
                )
            except ValueError as exc:  # the savers refuse some metadata filter keys
                raise BadRequest(str(exc)) from exc
        for item in found:
            yield _tuple_out(tenant, item)

    async def Put(self, request: memory_pb2.PutRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            op = self._put(request)
            saved = await self._storage.run("put", op)
            await self._written(scoped(request.tenant_id, request.config.thread_id))
        return memory_pb2.PutResponse(config=_config_out(request.tenant_id, saved))

    async def PutWrites(self, request: memory_pb2.PutWritesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            await self._storage.run("put_writes", self._put_writes(request))
            await self._written(scoped(request.tenant_id, request.config.thread_id))
        return memory_pb2.PutWritesResponse()

    async def PutBatch(self, request: memory_pb2.PutBatchRequest, context: grpc.aio.ServicerContext) -> Any:
        """A run's pipelined checkpoint writes in one round trip, stored in their order."""
        async with abort_on_error(context):
            # Every item is checked before any is stored: a malformed batch stores nothing.
            ops: list[tuple[str, memory_pb2.PutRequest | None, Callable[[BaseCheckpointSaver], Awaitable[Any]]]] = []
            for item in request.items:
                kind = item.WhichOneof("item")
                if kind == "put":
                    ops.append(("put", item.put, self._put(item.put)))
                elif kind == "writes":
                    ops.append(("put_writes", None, self._put_writes(item.writes)))
                else:
                    raise BadRequest("every item of a batch is a put or a writes")
            replies = []
            for what, put, op in ops:
                # One storage turn (and span) per write, as when each came alone: the trace shows every checkpoint.
                saved = await self._storage.run(what, op)
                if put is not None:
                    replies.append(memory_pb2.PutResponse(config=_config_out(put.tenant_id, saved)))
            for thread in {_item_thread(item) for item in request.items}:
                await self._written(thread)
        return memory_pb2.PutBatchResponse(puts=replies)

    def _put(self, request: memory_pb2.PutRequest) -> Callable[[BaseCheckpointSaver], Awaitable[RunnableConfig]]:
        """The checked request, as the storage operation that stores it."""
        tenant = check_tenant_id(request.tenant_id)
        config = _config_in(tenant, request.config)
        checkpoint = json_object(request.checkpoint_json, "checkpoint_json")
        if not isinstance(checkpoint.get("id"), str) or not checkpoint["id"]:
            raise BadRequest("checkpoint_json must have a non-empty string 'id'")
        checkpoint["channel_values"] = {k: Opaque(v.type, v.data) for k, v in request.channel_values.items()}
        metadata = json_object(request.metadata_json, "metadata_json") if request.metadata_json else {}
        new_versions = json_object(request.new_versions_json, "new_versions_json")

        async def put(saver: BaseCheckpointSaver) -> RunnableConfig:
            saved = await saver.aput(config, checkpoint, metadata, new_versions)  # type: ignore[arg-type]
            # Once per run (its "input" checkpoint, or an update or fork), not on every step of it:
            # that registers the thread and dates its last activity at one write per run.
            if metadata.get("source") != "loop":
                await self._storage.threads.touch(tenant, request.config.thread_id, metadata)
            return saved

        return put

    @staticmethod
    def _put_writes(request: memory_pb2.PutWritesRequest) -> Callable[[BaseCheckpointSaver], Awaitable[None]]:
        tenant = check_tenant_id(request.tenant_id)
        config = _config_in(tenant, request.config)
        if not request.config.checkpoint_id:
            raise BadRequest("config.checkpoint_id is required: writes belong to a checkpoint")
        if not request.task_id:
            raise BadRequest("task_id is required")
        writes = [(w.channel, Opaque(w.value.type, w.value.data)) for w in request.writes]
        return lambda saver: saver.aput_writes(config, writes, request.task_id, request.task_path)

    async def DeleteThread(self, request: memory_pb2.DeleteThreadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            if not request.thread_id:
                raise BadRequest("thread_id is required")
            thread_id = scoped(tenant, request.thread_id)

            async def delete(saver: BaseCheckpointSaver) -> None:
                await saver.adelete_thread(thread_id)
                await self._storage.threads.delete(tenant, request.thread_id)

            await self._storage.run("delete_thread", delete)
            await self._written(thread_id)
        return memory_pb2.DeleteThreadResponse()


async def _list(
    saver: BaseCheckpointSaver,
    *,
    tenant: str,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> list[CheckpointTuple]:
    """The whole listing at once: the SQLite saver holds its lock while a listing is open,
    and a slow reader of the stream must not stall every other call."""
    if config is not None:
        return [item async for item in saver.alist(config, filter=filter, before=before, limit=limit)]
    # No thread named: the savers know nothing of tenants, so the tenant's threads are picked out here.
    prefix = f"{tenant}:"
    found: list[CheckpointTuple] = []
    # Typed as an iterator, but the savers' listings are async generators, which the break must close.
    listing = cast(AsyncGenerator[CheckpointTuple, None], saver.alist(None, filter=filter, before=before))
    async with aclosing(listing) as items:
        async for item in items:
            if item.config["configurable"]["thread_id"].startswith(prefix):
                found.append(item)
                if limit is not None and len(found) >= limit:
                    break
    return found


def _item_thread(item: memory_pb2.CheckpointWrite) -> str:
    request = item.put if item.WhichOneof("item") == "put" else item.writes
    return scoped(request.tenant_id, request.config.thread_id)


def _config_in(tenant: str, config: memory_pb2.CheckpointConfig, *, any_namespace: bool = False) -> RunnableConfig:
    """The saver's config for a thread of the tenant. An absent namespace is the root one,
    or, with ``any_namespace`` (a listing), every namespace."""
    if not config.thread_id:
        raise BadRequest("config.thread_id is required")
    namespace = config.checkpoint_ns if config.HasField("checkpoint_ns") or not any_namespace else None
    configurable: dict[str, Any] = {"thread_id": scoped(tenant, config.thread_id), "checkpoint_ns": namespace}
    if config.checkpoint_id:
        configurable["checkpoint_id"] = config.checkpoint_id
    return {"configurable": configurable}


def _before(config: memory_pb2.CheckpointConfig) -> RunnableConfig:
    # Only the id counts: checkpoints older than it, within the listing's own threads.
    if not config.checkpoint_id:
        raise BadRequest("before.checkpoint_id is required")
    return {"configurable": {"checkpoint_id": config.checkpoint_id}}


def _config_out(tenant: str, config: RunnableConfig) -> memory_pb2.CheckpointConfig:
    configurable = config["configurable"]
    return memory_pb2.CheckpointConfig(
        thread_id=configurable["thread_id"].removeprefix(f"{tenant}:"),
        checkpoint_ns=configurable.get("checkpoint_ns", ""),
        checkpoint_id=configurable.get("checkpoint_id") or "",
    )


def _typed(value: Any) -> memory_pb2.TypedValue:
    type_, data = (value.type, value.data) if isinstance(value, Opaque) else _JSONPLUS.dumps_typed(value)
    return memory_pb2.TypedValue(type=type_, data=data)


def _tuple_out(tenant: str, item: CheckpointTuple) -> memory_pb2.CheckpointTuple:
    checkpoint: dict[str, Any] = dict(item.checkpoint)
    channel_values = checkpoint.pop("channel_values", {})
    reply = memory_pb2.CheckpointTuple(
        config=_config_out(tenant, item.config),
        checkpoint_json=json.dumps(checkpoint).encode(),
        channel_values={k: _typed(v) for k, v in channel_values.items()},
        metadata_json=json.dumps(item.metadata).encode(),
        pending_writes=[
            memory_pb2.PendingWrite(task_id=task_id, channel=channel, value=_typed(value))
            for task_id, channel, value in item.pending_writes or []
        ],
    )
    if item.parent_config:
        reply.parent_config.CopyFrom(_config_out(tenant, item.parent_config))
    return reply
