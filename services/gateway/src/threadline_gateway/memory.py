"""The gateway's client of the memory service: threads and their checkpoints, and assistants, decoded for the API.

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
from threadline.memory.v1.memory_pb2_grpc import (
    AssistantServiceStub,
    CheckpointServiceStub,
    StoreServiceStub,
    ThreadServiceStub,
)

from threadline_gateway.errors import ApiError
from threadline_gateway.pending_tasks import next_tasks

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
    next: list[str] = field(default_factory=list)  # the nodes the next step runs (LangGraph's StateSnapshot.next)
    tasks: list[dict[str, Any]] = field(default_factory=list)  # that step's tasks, as the LangGraph API lists them


@dataclass(frozen=True)
class Thread:
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Assistant:
    """An assistant at one version (the latest, unless read from its versions)."""

    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: str
    updated_at: str
    system: bool  # a graph's default assistant: every tenant's, read-only


@dataclass(frozen=True)
class GraphSchemas:
    """What the agent registered of a graph: its JSON schemas (None where it has none) and its nodes and edges."""

    graph_id: str
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None
    graph: dict[str, Any] | None


@asynccontextmanager
async def memory_errors(thread_id: str | None = None, *, assistant_id: str | None = None) -> AsyncIterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise ApiError(422, "invalid_request", exc.details() or "The request was refused.") from exc
        if code == grpc.StatusCode.NOT_FOUND and assistant_id is not None:
            # Also a graph no agent serves (creating an assistant of it): the service's message says which.
            raise ApiError(404, "not_found", _capitalized(exc.details()) or f"No assistant {assistant_id!r}.") from exc
        if code == grpc.StatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"No thread {thread_id!r}.") from exc
        if code == grpc.StatusCode.ALREADY_EXISTS and assistant_id is not None:
            raise ApiError(409, "assistant_exists", f"Assistant {assistant_id!r} already exists.") from exc
        if code == grpc.StatusCode.ALREADY_EXISTS:
            raise ApiError(409, "thread_exists", f"Thread {thread_id!r} already exists.") from exc
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            raise ApiError(409, "read_only", _capitalized(exc.details()) or "Not allowed.") from exc
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
        self._assistants = AssistantServiceStub(channel)
        self._store = StoreServiceStub(channel)
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

    # --- assistants ---------------------------------------------------------------------------

    async def create_assistant(
        self,
        tenant_id: str,
        *,
        graph_id: str,
        assistant_id: str = "",
        name: str = "",
        description: str | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        if_exists_do_nothing: bool = False,
    ) -> Assistant:
        request = pb.CreateAssistantRequest(
            tenant_id=tenant_id,
            assistant_id=assistant_id,
            graph_id=graph_id,
            name=name,
            description=description,
            config_json=_json(config),
            context_json=_json(context),
            metadata_json=_json(metadata),
            if_exists_do_nothing=if_exists_do_nothing,
        )
        async with memory_errors(assistant_id=assistant_id or graph_id):
            return _assistant(await self._assistants.CreateAssistant(request, timeout=TIMEOUT_S))

    async def get_assistant(self, tenant_id: str, assistant_id: str) -> Assistant:
        """The assistant by id (or a graph's default one by the graph's name); a 404 when absent."""
        request = pb.GetAssistantRequest(tenant_id=tenant_id, assistant_id=assistant_id)
        async with memory_errors(assistant_id=assistant_id):
            return _assistant(await self._assistants.GetAssistant(request, timeout=TIMEOUT_S))

    async def update_assistant(
        self,
        tenant_id: str,
        assistant_id: str,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        description: str | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Assistant:
        """A new version: the fields given replace the latest version's (metadata is merged into it)."""
        request = pb.UpdateAssistantRequest(
            tenant_id=tenant_id,
            assistant_id=assistant_id,
            graph_id=graph_id or "",
            name=name or "",
            description=description,
            config_json=None if config is None else _json(config),
            context_json=None if context is None else _json(context),
            metadata_json=_json(metadata),
        )
        async with memory_errors(assistant_id=assistant_id):
            return _assistant(await self._assistants.UpdateAssistant(request, timeout=TIMEOUT_S))

    async def set_latest_assistant(self, tenant_id: str, assistant_id: str, version: int) -> Assistant:
        request = pb.SetLatestVersionRequest(tenant_id=tenant_id, assistant_id=assistant_id, version=version)
        async with memory_errors(assistant_id=assistant_id):
            return _assistant(await self._assistants.SetLatestVersion(request, timeout=TIMEOUT_S))

    async def search_assistants(
        self,
        tenant_id: str,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "updated_at",
        sort_order: str = "desc",
    ) -> list[Assistant]:
        request = self._search(tenant_id, graph_id, name, metadata, limit, offset, sort_by, sort_order)
        async with memory_errors():
            reply = await self._assistants.SearchAssistants(request, timeout=TIMEOUT_S)
        return [_assistant(a) for a in reply.assistants]

    async def count_assistants(
        self,
        tenant_id: str,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        request = self._search(tenant_id, graph_id, name, metadata, 0, 0, "", "")
        async with memory_errors():
            return (await self._assistants.CountAssistants(request, timeout=TIMEOUT_S)).count

    async def delete_assistant(self, tenant_id: str, assistant_id: str) -> None:
        request = pb.DeleteAssistantRequest(tenant_id=tenant_id, assistant_id=assistant_id)
        async with memory_errors(assistant_id=assistant_id):
            await self._assistants.DeleteAssistant(request, timeout=TIMEOUT_S)

    async def assistant_versions(
        self, tenant_id: str, assistant_id: str, *, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> list[Assistant]:
        """The assistant's versions, newest first."""
        request = pb.ListAssistantVersionsRequest(
            tenant_id=tenant_id,
            assistant_id=assistant_id,
            metadata_filter_json=_json(metadata) if metadata else b"",
            limit=limit,
            offset=offset,
        )
        async with memory_errors(assistant_id=assistant_id):
            reply = await self._assistants.ListAssistantVersions(request, timeout=TIMEOUT_S)
        return [_assistant(a) for a in reply.versions]

    async def graph_schemas(self, tenant_id: str, assistant_id: str) -> GraphSchemas:
        request = pb.GetAssistantRequest(tenant_id=tenant_id, assistant_id=assistant_id)
        async with memory_errors(assistant_id=assistant_id):
            reply = await self._assistants.GetGraphSchemas(request, timeout=TIMEOUT_S)

        def schema(data: bytes) -> dict[str, Any] | None:
            return json.loads(data) if data else None

        return GraphSchemas(
            graph_id=reply.graph_id,
            input_schema=schema(reply.input_schema_json),
            output_schema=schema(reply.output_schema_json),
            state_schema=schema(reply.state_schema_json),
            config_schema=schema(reply.config_schema_json),
            context_schema=schema(reply.context_schema_json),
            graph=schema(reply.graph_json),
        )

    # --- the long-term store (LangGraph's BaseStore), one operation per Batch call ---------------

    async def _store_op(self, tenant_id: str, op: pb.StoreOp) -> pb.StoreResult:
        async with memory_errors():
            reply = await self._store.Batch(pb.StoreBatchRequest(tenant_id=tenant_id, ops=[op]), timeout=TIMEOUT_S)
        return reply.results[0]

    async def store_put(
        self, tenant_id: str, namespace: list[str], key: str, value: dict[str, Any] | None, ttl: float | None = None
    ) -> None:
        """Write the item (``value`` None: delete it), expiring ``ttl`` minutes after its last write."""
        put = pb.StorePut(namespace=namespace, key=key)
        if value is not None:
            put.value_json = json.dumps(value).encode()
        if ttl is not None:
            put.ttl_minutes = ttl
        await self._store_op(tenant_id, pb.StoreOp(put=put))

    async def store_get(
        self, tenant_id: str, namespace: list[str], key: str, *, refresh_ttl: bool = False
    ) -> StoreItem | None:
        get = pb.StoreGet(namespace=namespace, key=key, refresh_ttl=refresh_ttl)
        result = await self._store_op(tenant_id, pb.StoreOp(get=get))
        return _store_item(result.item) if result.HasField("item") else None

    async def store_search(
        self,
        tenant_id: str,
        namespace_prefix: list[str],
        *,
        filter: dict[str, Any] | None,
        limit: int,
        offset: int,
        query: str | None,
        refresh_ttl: bool = False,
    ) -> list[StoreItem]:
        search = pb.StoreSearch(
            namespace_prefix=namespace_prefix,
            filter_json=json.dumps(filter).encode() if filter else b"",
            limit=limit,
            offset=offset,
            query=query or "",
            refresh_ttl=refresh_ttl,
        )
        result = await self._store_op(tenant_id, pb.StoreOp(search=search))
        return [_store_item(item) for item in result.items]

    async def store_namespaces(
        self,
        tenant_id: str,
        *,
        prefix: list[str] | None,
        suffix: list[str] | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> list[list[str]]:
        conditions = [
            pb.NamespaceMatch(match_type=kind, path=path)
            for kind, path in (("prefix", prefix), ("suffix", suffix))
            if path
        ]
        listing = pb.StoreListNamespaces(match_conditions=conditions, limit=limit, offset=offset)
        if max_depth is not None:
            listing.max_depth = max_depth
        result = await self._store_op(tenant_id, pb.StoreOp(list_namespaces=listing))
        return [list(ns.path) for ns in result.namespaces]

    @staticmethod
    def _search(
        tenant_id: str,
        graph_id: str | None,
        name: str | None,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> pb.SearchAssistantsRequest:
        return pb.SearchAssistantsRequest(
            tenant_id=tenant_id,
            graph_id=graph_id or "",
            name=name or "",
            metadata_filter_json=_json(metadata) if metadata else b"",
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )

    def _decode(self, thread_id: str, item: pb.CheckpointTuple) -> Checkpoint:
        checkpoint = json.loads(item.checkpoint_json)
        values = {
            channel: self._serde.loads_typed((value.type, value.data))
            for channel, value in item.channel_values.items()
            if not channel.startswith(("branch:", "__"))
        }
        metadata = json.loads(item.metadata_json) if item.metadata_json else {}
        writes = [
            (
                write.task_id,
                write.channel,
                jsonable_encoder(self._serde.loads_typed((write.value.type, write.value.data)))
                if write.channel in (INTERRUPT, "__error__")
                else None,
            )
            for write in item.pending_writes
        ]
        step = metadata.get("step")
        tasks = next_tasks(checkpoint, set(item.channel_values), step if isinstance(step, int) else -1, writes)
        return Checkpoint(
            thread_id=thread_id,
            checkpoint_id=item.config.checkpoint_id,
            parent_checkpoint_id=item.parent_config.checkpoint_id if item.HasField("parent_config") else None,
            created_at=checkpoint.get("ts"),
            metadata=metadata,
            values=jsonable_encoder(values),
            next=[t.name for t in tasks],
            tasks=[t.as_langgraph() for t in tasks],
            interrupts=[
                jsonable_encoder(interrupt)
                for write in item.pending_writes
                if write.channel == INTERRUPT
                for interrupt in self._serde.loads_typed((write.value.type, write.value.data))
            ],
        )


@dataclass(frozen=True)
class StoreItem:
    """An item of the long-term store, in the caller's tenant (the service strips the tenant off)."""

    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: str
    updated_at: str
    score: float | None = None


def _store_item(item: pb.StoreItem) -> StoreItem:
    return StoreItem(
        namespace=list(item.namespace),
        key=item.key,
        value=json.loads(item.value_json) if item.value_json else {},
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=item.score if item.HasField("score") else None,
    )


def _thread(reply: pb.Thread) -> Thread:
    return Thread(
        thread_id=reply.thread_id,
        created_at=reply.created_at,
        updated_at=reply.updated_at,
        metadata=json.loads(reply.metadata_json) if reply.metadata_json else {},
    )


def _json(value: dict[str, Any] | None) -> bytes:
    return json.dumps(value or {}).encode()


def _capitalized(text: str | None) -> str:
    return f"{text[0].upper()}{text[1:]}." if text else ""


def _assistant(reply: pb.Assistant) -> Assistant:
    return Assistant(
        assistant_id=reply.assistant_id,
        graph_id=reply.graph_id,
        name=reply.name,
        description=reply.description if reply.HasField("description") else None,
        config=json.loads(reply.config_json) if reply.config_json else {},
        context=json.loads(reply.context_json) if reply.context_json else {},
        metadata=json.loads(reply.metadata_json) if reply.metadata_json else {},
        version=reply.version,
        created_at=reply.created_at,
        updated_at=reply.updated_at,
        system=reply.system,
    )
