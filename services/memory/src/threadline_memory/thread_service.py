"""The gRPC ThreadService: a tenant's threads as the gateway lists and manages them.

Scoped like checkpoints: every call names its tenant, and another tenant's thread is
NOT_FOUND, exactly as one that never existed.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

import grpc
from langgraph.checkpoint.base import BaseCheckpointSaver
from threadline.events import DataErased
from threadline.grpc import BadRequest, abort_on_error
from threadline.ids import check_tenant_id
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc
from threadline.namespaces import user_namespace

from threadline_memory.cache import LatestCheckpointCache
from threadline_memory.erasure_events import ErasureEvents, EventsUnavailable
from threadline_memory.fields import json_object, scoped
from threadline_memory.storage import Storage
from threadline_memory.store_service import erase_items
from threadline_memory.threads import SortBy, SortOrder, ThreadExists, ThreadRow

SERVICE_NAME = memory_pb2.DESCRIPTOR.services_by_name["ThreadService"].full_name
_MAX_LIMIT = 1000
_SORT_BY: tuple[SortBy, ...] = ("updated_at", "created_at", "thread_id")
_SORT_ORDER: tuple[SortOrder, ...] = ("desc", "asc")


class ThreadServicer(memory_pb2_grpc.ThreadServiceServicer):
    def __init__(
        self, storage: Storage, cache: LatestCheckpointCache | None = None, events: ErasureEvents | None = None
    ) -> None:
        self._storage = storage
        self._threads = storage.threads
        self._cache = cache
        self._events = events

    async def CreateThread(self, request: memory_pb2.CreateThreadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            thread_id = _thread_id(request.thread_id) if request.thread_id else str(uuid.uuid4())
            metadata = json_object(request.metadata_json, "metadata_json") if request.metadata_json else {}
            try:
                created = await self._storage.run(
                    "create_thread",
                    lambda _: self._threads.create(
                        tenant, thread_id, metadata, if_exists_do_nothing=request.if_exists_do_nothing
                    ),
                )
            except ThreadExists:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"thread {thread_id!r} already exists")
        return _thread_out(created)

    async def GetThread(self, request: memory_pb2.GetThreadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant, thread_id = check_tenant_id(request.tenant_id), _thread_id(request.thread_id)
            found = await self._storage.run("get_thread", lambda _: self._threads.get(tenant, thread_id))
        return await _found(context, found, thread_id)

    async def UpdateThread(self, request: memory_pb2.UpdateThreadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant, thread_id = check_tenant_id(request.tenant_id), _thread_id(request.thread_id)
            metadata = json_object(request.metadata_json, "metadata_json") if request.metadata_json else {}
            updated = await self._storage.run(
                "update_thread", lambda _: self._threads.merge_metadata(tenant, thread_id, metadata)
            )
        return await _found(context, updated, thread_id)

    async def ListThreads(self, request: memory_pb2.ListThreadsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            metadata = {}
            if request.metadata_filter_json:
                metadata = json_object(request.metadata_filter_json, "metadata_filter_json")
            if not 0 <= request.limit <= _MAX_LIMIT:
                raise BadRequest(f"limit must be 0 (the default, 10) to {_MAX_LIMIT}")
            if request.offset < 0:
                raise BadRequest("offset must not be negative")
            sort_by = _choice(request.sort_by or "updated_at", _SORT_BY, "sort_by")
            sort_order = _choice(request.sort_order or "desc", _SORT_ORDER, "sort_order")
            rows = await self._storage.run(
                "list_threads",
                lambda _: self._threads.search(
                    tenant,
                    metadata,
                    limit=request.limit or 10,
                    offset=request.offset,
                    sort_by=sort_by,  # type: ignore[arg-type]
                    sort_order=sort_order,  # type: ignore[arg-type]
                ),
            )
        return memory_pb2.ListThreadsResponse(threads=[_thread_out(row) for row in rows])

    async def CopyThread(self, request: memory_pb2.CopyThreadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant, source = check_tenant_id(request.tenant_id), _thread_id(request.thread_id)
            target = _thread_id(request.new_thread_id) if request.new_thread_id else str(uuid.uuid4())

            async def copy(saver: BaseCheckpointSaver) -> ThreadRow | None:
                found = await self._threads.get(tenant, source)
                if found is None:
                    return None
                # Registered first: a copy that fails half-way is a thread the caller can see and delete.
                created = await self._threads.create(tenant, target, found.metadata, if_exists_do_nothing=False)
                await _copy_checkpoints(saver, scoped(tenant, source), scoped(tenant, target))
                return created

            try:
                copied = await self._storage.run("copy_thread", copy)
            except ThreadExists:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"thread {target!r} already exists")
        return await _found(context, copied, source)

    async def Erase(self, request: memory_pb2.EraseRequest, context: grpc.aio.ServicerContext) -> Any:
        """Every step is idempotent, so a caller that got UNAVAILABLE (say, NATS was down
        after the data was gone) simply erases again, and the event goes out then."""
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            user_id = request.user_id or None
            store_prefix = (tenant, *user_namespace(user_id)) if user_id else (tenant,)

            # Step by step, each within the database time limit, so erasing a large tenant cannot time
            # out as a whole; a step that fails leaves the rest for the caller's next try.
            erased = await self._storage.run("erase_list", lambda _: self._threads.ids(tenant, user_id))
            for thread_id in erased:

                async def erase_thread(saver: BaseCheckpointSaver, thread_id: str = thread_id) -> None:
                    await saver.adelete_thread(scoped(tenant, thread_id))
                    await self._threads.delete(tenant, thread_id)

                await self._storage.run("erase_thread", erase_thread)
            store = self._storage.store
            # Expired items are hidden from searches, so sweep them first: erasure leaves none behind.
            await self._storage.run("erase_expired", lambda _: store.sweep_ttl())  # type: ignore[attr-defined]
            items = 0
            while deleted := await self._storage.run("erase_items", lambda _: erase_items(store, store_prefix)):
                items += deleted
            assistants = 0
            if user_id is None:
                assistants = await self._storage.run(
                    "erase_assistants", lambda _: self._storage.assistants.erase(tenant)
                )
            # The tenant's crons, or those the user made: they would start runs with the erased data again.
            crons = await self._storage.run("erase_crons", lambda _: self._storage.crons.erase(tenant, user_id))
            if self._cache is not None:
                await self._cache.forget(tenant, [scoped(tenant, thread_id) for thread_id in erased])
            if self._events is not None:
                event = DataErased(tenant_id=tenant, user_id=user_id, threads=len(erased), store_items=items)
                try:
                    await self._events.publish(event)
                except EventsUnavailable as exc:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"erased, but not yet announced: {exc}")
        return memory_pb2.EraseResponse(threads=len(erased), store_items=items, assistants=assistants, crons=crons)


async def _copy_checkpoints(saver: BaseCheckpointSaver, source: str, target: str) -> None:
    """Every checkpoint of every namespace, oldest first so each parent exists before its child,
    with its pending writes, through the saver's own API (its schema stays its business)."""
    items = [item async for item in saver.alist({"configurable": {"thread_id": source}})]
    for item in reversed(items):
        namespace = item.config["configurable"].get("checkpoint_ns", "")
        configurable: dict[str, Any] = {"thread_id": target, "checkpoint_ns": namespace}
        if item.parent_config:
            configurable["checkpoint_id"] = item.parent_config["configurable"]["checkpoint_id"]
        saved = await saver.aput(
            {"configurable": configurable},
            item.checkpoint,
            item.metadata,
            item.checkpoint["channel_versions"],
        )
        by_task: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in item.pending_writes or []:
            by_task[task_id].append((channel, value))
        for task_id, writes in by_task.items():
            await saver.aput_writes(saved, writes, task_id)


def _thread_id(thread_id: str) -> str:
    if not thread_id:
        raise BadRequest("thread_id is required")
    return thread_id


def _choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise BadRequest(f"{field} must be one of {', '.join(allowed)}")
    return value


async def _found(context: grpc.aio.ServicerContext, row: ThreadRow | None, thread_id: str) -> memory_pb2.Thread:
    if row is None:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no thread {thread_id!r}")
    return _thread_out(row)


def _thread_out(row: ThreadRow) -> memory_pb2.Thread:
    return memory_pb2.Thread(
        thread_id=row.thread_id,
        metadata_json=json.dumps(row.metadata).encode(),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
