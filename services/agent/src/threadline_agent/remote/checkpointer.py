"""A LangGraph checkpointer whose checkpoints live in the memory service, reached over gRPC.

Values are serialized here, with this process's serializer (``self.serde``), and
travel as opaque (type, bytes) pairs: the memory service stores them without
decoding, so any state an agent can serialize comes back unchanged. The tenant
of every call is ``config["configurable"]["tenant_id"]``, else the one the saver
was bound to; with neither the call raises ``ValueError`` rather than guess one.
Configs this saver returns carry it, so a config taken from a state snapshot
stays in its tenant.

Failures surface as ``grpc.RpcError``: UNAVAILABLE when the memory service or its
database is down (worth retrying), INVALID_ARGUMENT for a malformed call. Given a
``guard``, the async calls retry transient failures with backoff (every call is
idempotent: a checkpoint and its writes are keyed by ids the caller chose) behind a
circuit breaker, which then fails them at once with ``CircuitOpen``.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc

from threadline_agent.remote.stubs import LazyStubs
from threadline_agent.resilience import Guarded, transient_grpc_error

T = TypeVar("T")


class RemoteCheckpointSaver(BaseCheckpointSaver[str]):
    """``BaseCheckpointSaver`` over the memory service's ``CheckpointService``.

    Give a ``target`` ("host:port"): async calls then use a traced ``grpc.aio``
    channel and sync calls a traced blocking one, each opened on first use (so the
    saver can be built before the event loop runs). Or give an open ``grpc.aio``
    ``channel``: only the async methods work then. ``timeout_s`` bounds every call.
    ``tenant_id`` binds a saver that works for one tenant (a tool, a test); the
    worker's saver is bound to none, since every run names its own.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        tenant_id: str | None = None,
        timeout_s: float | None = 10.0,
        serde: SerializerProtocol | None = None,
        guard: Guarded | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.tenant_id = tenant_id
        self.timeout_s = timeout_s
        self.guard = guard
        self._stubs = LazyStubs(memory_pb2_grpc.CheckpointServiceStub, target, channel)

    # --- async -------------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        tenant = self._tenant(config)
        request = self._get_request(tenant, config)
        reply = await self._call(lambda: self._stubs.aio().GetTuple(request, timeout=self.timeout_s))
        return self._tuple(tenant, reply.tuple) if reply.HasField("tuple") else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        tenant = self._tenant(config)
        # A stream is not retried (its reader may have seen part of it), but it answers to the breaker.
        breaker = self.guard.breaker if self.guard is not None else None
        if breaker is not None:
            breaker.before_call()
        call = self._stubs.aio().List(self._list_request(tenant, config, filter, before, limit), timeout=self.timeout_s)
        try:
            async for item in call:
                yield self._tuple(tenant, item)
        except grpc.aio.AioRpcError as exc:
            if breaker is not None and transient_grpc_error(exc):
                breaker.record_failure()
            elif breaker is not None:
                breaker.record_neutral()
            raise
        finally:
            call.cancel()  # a reader that stops early must not leave the stream open
            if breaker is not None:
                breaker.abandon()
        if breaker is not None:
            breaker.record_success()

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        tenant = self._tenant(config)
        request = self._put_request(tenant, config, checkpoint, metadata, new_versions)
        reply = await self._call(lambda: self._stubs.aio().Put(request, timeout=self.timeout_s))
        return self._config(tenant, reply.config)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        request = self._put_writes_request(self._tenant(config), config, writes, task_id, task_path)
        await self._call(lambda: self._stubs.aio().PutWrites(request, timeout=self.timeout_s))

    async def adelete_thread(self, thread_id: str, *, tenant_id: str | None = None) -> None:
        request = memory_pb2.DeleteThreadRequest(tenant_id=self._named(tenant_id), thread_id=str(thread_id))
        await self._call(lambda: self._stubs.aio().DeleteThread(request, timeout=self.timeout_s))

    async def close(self) -> None:
        """Close the channels this saver opened (not one it was given)."""
        await self._stubs.close()

    # --- sync (a blocking channel to the same target) ----------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        tenant = self._tenant(config)
        reply = self._stubs.blocking().GetTuple(self._get_request(tenant, config), timeout=self.timeout_s)
        return self._tuple(tenant, reply.tuple) if reply.HasField("tuple") else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        tenant = self._tenant(config)
        call = self._stubs.blocking().List(
            self._list_request(tenant, config, filter, before, limit), timeout=self.timeout_s
        )
        for item in call:
            yield self._tuple(tenant, item)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        tenant = self._tenant(config)
        request = self._put_request(tenant, config, checkpoint, metadata, new_versions)
        return self._config(tenant, self._stubs.blocking().Put(request, timeout=self.timeout_s).config)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        request = self._put_writes_request(self._tenant(config), config, writes, task_id, task_path)
        self._stubs.blocking().PutWrites(request, timeout=self.timeout_s)

    def delete_thread(self, thread_id: str, *, tenant_id: str | None = None) -> None:
        request = memory_pb2.DeleteThreadRequest(tenant_id=self._named(tenant_id), thread_id=str(thread_id))
        self._stubs.blocking().DeleteThread(request, timeout=self.timeout_s)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The versions of InMemorySaver and PostgresSaver: a zero-padded counter, then a random tie-breaker."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # --- plumbing ----------------------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        return await (call() if self.guard is None else self.guard.call(call))

    def _tenant(self, config: RunnableConfig | None) -> str:
        return self._named((config or {}).get("configurable", {}).get("tenant_id"))

    def _named(self, tenant_id: str | None) -> str:
        """``tenant_id``, else the saver's own: never a default, which would be another tenant's checkpoints."""
        tenant = tenant_id or self.tenant_id
        if not tenant:
            raise ValueError(
                "no tenant for this checkpoint call: the config has no configurable.tenant_id "
                "and the saver is bound to none (RemoteCheckpointSaver(tenant_id=...))"
            )
        return str(tenant)

    def _get_request(self, tenant: str, config: RunnableConfig) -> memory_pb2.GetTupleRequest:
        return memory_pb2.GetTupleRequest(tenant_id=tenant, config=_wire_config(config))

    def _list_request(
        self,
        tenant: str,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> memory_pb2.ListRequest:
        request = memory_pb2.ListRequest(
            tenant_id=tenant, filter_json=json.dumps(filter).encode() if filter else b"", limit=limit or 0
        )
        if config is not None:
            request.config.CopyFrom(_wire_config(config))
        if before is not None:
            request.before.CopyFrom(memory_pb2.CheckpointConfig(checkpoint_id=get_checkpoint_id(before) or ""))
        return request

    def _put_request(
        self,
        tenant: str,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> memory_pb2.PutRequest:
        fields = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        return memory_pb2.PutRequest(
            tenant_id=tenant,
            config=_wire_config(config),
            checkpoint_json=json.dumps(fields).encode(),
            # Every value, not just the changed ones: a file-backed memory service stores whole checkpoints.
            channel_values={k: self._typed(v) for k, v in checkpoint["channel_values"].items()},
            # Merged here, where the caller's config is: what the run's config adds to the metadata.
            metadata_json=json.dumps(get_checkpoint_metadata(config, metadata)).encode(),
            new_versions_json=json.dumps(new_versions).encode(),
        )

    def _put_writes_request(
        self, tenant: str, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> memory_pb2.PutWritesRequest:
        return memory_pb2.PutWritesRequest(
            tenant_id=tenant,
            config=_wire_config(config),
            writes=[memory_pb2.PendingWrite(channel=c, value=self._typed(v)) for c, v in writes],
            task_id=task_id,
            task_path=task_path,
        )

    def _typed(self, value: Any) -> memory_pb2.TypedValue:
        type_, data = self.serde.dumps_typed(value)
        return memory_pb2.TypedValue(type=type_, data=data)

    def _tuple(self, tenant: str, item: memory_pb2.CheckpointTuple) -> CheckpointTuple:
        checkpoint = json.loads(item.checkpoint_json)
        checkpoint["channel_values"] = {
            k: self.serde.loads_typed((v.type, v.data)) for k, v in item.channel_values.items()
        }
        return CheckpointTuple(
            config=self._config(tenant, item.config),
            checkpoint=checkpoint,
            metadata=json.loads(item.metadata_json) if item.metadata_json else {},
            parent_config=self._config(tenant, item.parent_config) if item.HasField("parent_config") else None,
            pending_writes=[
                (w.task_id, w.channel, self.serde.loads_typed((w.value.type, w.value.data)))
                for w in item.pending_writes
            ],
        )

    @staticmethod
    def _config(tenant: str, config: memory_pb2.CheckpointConfig) -> RunnableConfig:
        return {
            "configurable": {
                "thread_id": config.thread_id,
                "checkpoint_ns": config.checkpoint_ns,
                "checkpoint_id": config.checkpoint_id,
                "tenant_id": tenant,
            }
        }


def _wire_config(config: RunnableConfig) -> memory_pb2.CheckpointConfig:
    configurable = config["configurable"]
    wire = memory_pb2.CheckpointConfig(
        thread_id=str(configurable["thread_id"]), checkpoint_id=get_checkpoint_id(config) or ""
    )
    # Left out when absent, so a listing spans every namespace, as with the other savers.
    if configurable.get("checkpoint_ns") is not None:
        wire.checkpoint_ns = configurable["checkpoint_ns"]
    return wire
