"""A LangGraph long-term memory store whose items live in the memory service, reached over gRPC.

One compiled graph serves every tenant, so the tenant of a call is read where the
checkpointer reads it: ``configurable.tenant_id`` of the run the call is made in (from
LangGraph's context), else the tenant the store was bound to; with neither the call raises
``ValueError`` rather than reach a default tenant's items. The memory service puts the tenant in
front of every namespace and strips it from replies, so a caller cannot name another
tenant's items. A whole batch is one call; UNAVAILABLE (the memory service or its
database restarting) is retried with backoff within the deadline, which is safe because
every operation is idempotent (a put writes the same value again).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import grpc
from langgraph.config import get_config
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc

from threadline_agent.remote.stubs import LazyStubs

_RETRIED = (grpc.StatusCode.UNAVAILABLE,)
_BACKOFF_S = (0.1, 0.4, 1.0)


class RemoteStore(BaseStore):
    """``BaseStore`` over the memory service's ``StoreService``.

    Give a ``target`` ("host:port"): async calls use a traced ``grpc.aio`` channel and sync
    calls a blocking one, each opened on first use. Or give an open ``grpc.aio`` ``channel``
    (async only). ``timeout_s`` bounds each call, retries included. Vector search is not
    offered: a ``query`` is passed on, and items come back by filter and recency.
    ``tenant_id`` binds a store used outside runs (a tool, a test) to one tenant.
    """

    supports_ttl = True

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        tenant_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.timeout_s = timeout_s
        self._stubs = LazyStubs(memory_pb2_grpc.StoreServiceStub, target, channel)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        request = self._request(ops)
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(len(_BACKOFF_S) + 1):
            try:
                reply = await self._stubs.aio().Batch(request, timeout=max(0.01, deadline - time.monotonic()))
                return _results(ops, reply)
            except grpc.aio.AioRpcError as exc:
                pause = _pause(exc, attempt, deadline)
                if pause is None:
                    raise
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        request = self._request(ops)
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(len(_BACKOFF_S) + 1):
            try:
                reply = self._stubs.blocking().Batch(request, timeout=max(0.01, deadline - time.monotonic()))
                return _results(ops, reply)
            except grpc.RpcError as exc:
                pause = _pause(exc, attempt, deadline)
                if pause is None:
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the channels this store opened (not one it was given)."""
        await self._stubs.close()

    def _tenant(self) -> str:
        try:
            tenant = get_config().get("configurable", {}).get("tenant_id") or self.tenant_id
        except RuntimeError:  # not inside a run
            tenant = self.tenant_id
        if not tenant:
            raise ValueError(
                "no tenant for this store call: the run's config has no configurable.tenant_id "
                "and the store is bound to none (RemoteStore(tenant_id=...))"
            )
        return str(tenant)

    def _request(self, ops: list[Op]) -> memory_pb2.StoreBatchRequest:
        return memory_pb2.StoreBatchRequest(tenant_id=self._tenant(), ops=[_op_out(op) for op in ops])


def _pause(exc: grpc.RpcError, attempt: int, deadline: float) -> float | None:
    """How long to wait before trying again, or None to give up and raise."""
    if exc.code() not in _RETRIED or attempt >= len(_BACKOFF_S):
        return None
    pause = _BACKOFF_S[attempt] * (0.5 + random.random())  # jitter: replicas do not retry in step
    return pause if time.monotonic() + pause < deadline else None


def _op_out(op: Op) -> memory_pb2.StoreOp:
    if isinstance(op, GetOp):
        return memory_pb2.StoreOp(
            get=memory_pb2.StoreGet(namespace=op.namespace, key=op.key, refresh_ttl=op.refresh_ttl)
        )
    if isinstance(op, PutOp):
        put = memory_pb2.StorePut(namespace=op.namespace, key=op.key)
        if op.value is not None:
            put.value_json = json.dumps(op.value).encode()
        if op.ttl is not None:
            put.ttl_minutes = op.ttl
        return memory_pb2.StoreOp(put=put)
    if isinstance(op, SearchOp):
        return memory_pb2.StoreOp(
            search=memory_pb2.StoreSearch(
                namespace_prefix=op.namespace_prefix,
                filter_json=json.dumps(op.filter).encode() if op.filter else b"",
                limit=op.limit,
                offset=op.offset,
                query=op.query or "",
                refresh_ttl=op.refresh_ttl,
            )
        )
    if isinstance(op, ListNamespacesOp):
        listing = memory_pb2.StoreListNamespaces(
            match_conditions=[
                memory_pb2.NamespaceMatch(match_type=c.match_type, path=c.path) for c in op.match_conditions or ()
            ],
            limit=op.limit,
            offset=op.offset,
        )
        if op.max_depth is not None:
            listing.max_depth = op.max_depth
        return memory_pb2.StoreOp(list_namespaces=listing)
    raise TypeError(f"unknown store operation {type(op).__name__}")


def _item(item: memory_pb2.StoreItem, *, search: bool = False) -> Item:
    fields: dict[str, Any] = {
        "namespace": tuple(item.namespace),
        "key": item.key,
        "value": json.loads(item.value_json),
        "created_at": datetime.fromisoformat(item.created_at),
        "updated_at": datetime.fromisoformat(item.updated_at),
    }
    if search:
        return SearchItem(**fields, score=item.score if item.HasField("score") else None)
    return Item(**fields)


def _results(ops: list[Op], reply: memory_pb2.StoreBatchResponse) -> list[Result]:
    if len(reply.results) != len(ops):
        raise RuntimeError(f"the memory service answered {len(reply.results)} results for {len(ops)} operations")
    results: list[Result] = []
    for op, result in zip(ops, reply.results, strict=True):
        if isinstance(op, GetOp):
            results.append(_item(result.item) if result.HasField("item") else None)
        elif isinstance(op, SearchOp):
            results.append([_item(item, search=True) for item in result.items])
        elif isinstance(op, ListNamespacesOp):
            results.append([tuple(ns.path) for ns in result.namespaces])
        else:
            results.append(None)
    return results
