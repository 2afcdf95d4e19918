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

Writes are pipelined: the async ``aput`` and ``aput_writes`` of one thread that arrive while an
earlier call of that thread is on the wire travel together in the next ``PutBatch`` call, in their
order (``batch_writes=False``: a call each, as before). Each call returns once its write is stored,
except inside ``write_behind(saver)``: there ``aput`` returns at once and its checkpoint is sent in
the background right away. LangGraph (``durability="async"``) awaits each put before making the
next one, so this is what lets a run's checkpoints share calls; ``aflush`` then waits until the
thread's writes are stored (or raises what failed them), and a read of the thread flushes it first.
A crash loses what ``durability="async"`` may lose anyway (the checkpoint in flight while the next
step runs); the worker flushes before it publishes the run's end and acks it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
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
# Set by ``write_behind``: the savers whose puts return before they are stored, in this context only.
_WRITE_BEHIND: ContextVar[frozenset[int]] = ContextVar("threadline_write_behind", default=frozenset())


@contextmanager
def write_behind(saver: object) -> Iterator[None]:
    """Within this block (and the tasks it starts), ``saver.aput`` does not wait for the memory service.

    The caller must ``await saver.aflush(config)`` before it relies on the run's checkpoints being
    stored. Any other saver is left as it is, so a caller may wrap whatever saver its graph has.
    """
    token = _WRITE_BEHIND.set(_WRITE_BEHIND.get() | {id(saver)})
    try:
        yield
    finally:
        _WRITE_BEHIND.reset(token)


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
        batch_writes: bool = True,
    ) -> None:
        super().__init__(serde=serde)
        self.tenant_id = tenant_id
        self.timeout_s = timeout_s
        self.guard = guard
        self.batch_writes = batch_writes
        self._stubs = LazyStubs(memory_pb2_grpc.CheckpointServiceStub, target, channel)
        self._pipes: dict[tuple[str, str], _WritePipe] = {}  # by (tenant, thread): writes waiting for the wire

    # --- async -------------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        tenant = self._tenant(config)
        await self._flush_thread(tenant, config)  # read what this process wrote
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
        if config is not None:
            await self._flush_thread(tenant, config)
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
        if self.batch_writes:
            sent = self._pipe(tenant, config).send(memory_pb2.CheckpointWrite(put=request))
            if id(self) in _WRITE_BEHIND.get():
                # The id the caller chose; the service stores the checkpoint under it, in the thread it names.
                return self._config(tenant, _stored_as(config, checkpoint))
            batched = await sent
            assert batched is not None  # a put's reply
            return self._config(tenant, batched.config)
        reply = await self._call(lambda: self._stubs.aio().Put(request, timeout=self.timeout_s))
        return self._config(tenant, reply.config)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        tenant = self._tenant(config)
        request = self._put_writes_request(tenant, config, writes, task_id, task_path)
        if self.batch_writes:
            await self._pipe(tenant, config).send(memory_pb2.CheckpointWrite(writes=request))
        else:
            await self._call(lambda: self._stubs.aio().PutWrites(request, timeout=self.timeout_s))

    async def aflush(self, config: RunnableConfig) -> None:
        """Wait until every write of ``config``'s thread made so far is stored; raise the error that failed one."""
        await self._flush_thread(self._tenant(config), config)

    async def adelete_thread(self, thread_id: str, *, tenant_id: str | None = None) -> None:
        tenant = self._named(tenant_id)
        await self._flush_thread(tenant, {"configurable": {"thread_id": thread_id}})
        request = memory_pb2.DeleteThreadRequest(tenant_id=tenant, thread_id=str(thread_id))
        await self._call(lambda: self._stubs.aio().DeleteThread(request, timeout=self.timeout_s))

    async def close(self) -> None:
        """Close the channels this saver opened (not one it was given), once the writes on their way are stored."""
        await asyncio.gather(*(pipe.drained() for pipe in list(self._pipes.values())), return_exceptions=True)
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

    def _pipe(self, tenant: str, config: RunnableConfig) -> _WritePipe:
        key = (tenant, str(config["configurable"]["thread_id"]))
        pipe = self._pipes.get(key)
        if pipe is None:
            pipe = self._pipes[key] = _WritePipe(self._put_batch, lambda: self._idle(key))
        pipe.check()  # a thread whose earlier write failed takes no more: the run stops at its next step
        return pipe

    def _idle(self, key: tuple[str, str]) -> None:
        pipe = self._pipes.get(key)
        if pipe is not None and pipe.failed is None:  # a failure waits for the flush that reports it
            del self._pipes[key]

    async def _flush_thread(self, tenant: str, config: RunnableConfig) -> None:
        thread = (config.get("configurable") or {}).get("thread_id")
        key = (tenant, str(thread))
        pipe = self._pipes.get(key) if thread is not None else None
        if pipe is not None:
            try:
                await pipe.drained()
            finally:
                if pipe.failed is not None and self._pipes.get(key) is pipe:
                    del self._pipes[key]  # reported once; the thread starts afresh

    async def _put_batch(self, request: memory_pb2.PutBatchRequest) -> memory_pb2.PutBatchResponse:
        return await self._call(lambda: self._stubs.aio().PutBatch(request, timeout=self.timeout_s))

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


# Event-loop turns a pipe waits before it sends: LangGraph submits a step's writes and its next
# checkpoint from tasks that wake a turn or two apart, and this lets them share one call.
_GATHER_TURNS = 3


class _WritePipe:
    """One thread's checkpoint writes: one ``PutBatch`` on the wire at a time, the next one gathering
    what arrives meanwhile. ``done`` is called once nothing is waiting, so idle threads cost nothing.

    The first failure (after the guard's retries) fails its batch's callers and is kept in ``failed``:
    the writes after it are not sent (they would build on a write that is not there).
    """

    def __init__(
        self,
        send_batch: Callable[[memory_pb2.PutBatchRequest], Awaitable[memory_pb2.PutBatchResponse]],
        done: Callable[[], object],
    ) -> None:
        self._send_batch = send_batch
        self._done = done
        self._waiting: list[tuple[memory_pb2.CheckpointWrite, asyncio.Future[memory_pb2.PutResponse | None]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: list[asyncio.Future[memory_pb2.PutResponse | None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.failed: Exception | None = None

    def check(self) -> None:
        if self.failed is not None:
            raise self.failed

    def send(self, item: memory_pb2.CheckpointWrite) -> asyncio.Future[memory_pb2.PutResponse | None]:
        """Store ``item`` after the items sent before it: its future has a put's reply, None for writes."""
        self.check()
        future: asyncio.Future[memory_pb2.PutResponse | None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_observed)  # a write-behind put's failure is reported by the flush instead
        self._waiting.append((item, future))
        if self._sender is None:
            self._idle.clear()
            self._sender = asyncio.create_task(self._run())
        return future

    async def drained(self) -> None:
        """Once every item sent so far is stored; raises the failure that stopped this pipe."""
        await self._idle.wait()
        self.check()

    async def _run(self) -> None:
        try:
            while True:
                for _ in range(_GATHER_TURNS):
                    await asyncio.sleep(0)
                # A caller that gave up (its run was cancelled) has its item left out.
                batch = [(item, future) for item, future in self._waiting if not future.done()]
                self._waiting = []
                if not batch:
                    return
                self._in_flight = [future for _, future in batch]
                try:
                    reply = await self._send_batch(memory_pb2.PutBatchRequest(items=[item for item, _ in batch]))
                except Exception as exc:
                    self.failed = exc
                    for _, future in batch + self._waiting:
                        if not future.done():
                            future.set_exception(exc)
                    self._waiting = []
                    return
                puts = iter(reply.puts)
                for item, future in batch:
                    if not future.done():
                        future.set_result(next(puts, None) if item.HasField("put") else None)
        finally:
            # Only when the sender itself was cancelled (its loop is closing) are any of these still open.
            for future in self._in_flight + [future for _, future in self._waiting]:
                if not future.done():
                    future.cancel()
            self._waiting, self._in_flight = [], []
            self._sender = None
            self._idle.set()
            self._done()


def _observed(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _stored_as(config: RunnableConfig, checkpoint: Checkpoint) -> memory_pb2.CheckpointConfig:
    """What the service replies to a put: the thread and namespace of ``config``, the checkpoint's own id."""
    configurable = config["configurable"]
    return memory_pb2.CheckpointConfig(
        thread_id=str(configurable["thread_id"]),
        checkpoint_ns=configurable.get("checkpoint_ns") or "",
        checkpoint_id=checkpoint["id"],
    )


def _wire_config(config: RunnableConfig) -> memory_pb2.CheckpointConfig:
    configurable = config["configurable"]
    wire = memory_pb2.CheckpointConfig(
        thread_id=str(configurable["thread_id"]), checkpoint_id=get_checkpoint_id(config) or ""
    )
    # Left out when absent, so a listing spans every namespace, as with the other savers.
    if configurable.get("checkpoint_ns") is not None:
        wire.checkpoint_ns = configurable["checkpoint_ns"]
    return wire
