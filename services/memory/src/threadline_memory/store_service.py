"""The gRPC StoreService: LangGraph's long-term memory store, scoped to a tenant.

The tenant becomes the first element of every namespace here, below any caller, and is
stripped from every reply: a request can only ever name, search or list its own
tenant's items. The store itself (``AsyncPostgresStore`` or ``AsyncSqliteStore``) does
the work, so its schema, filters and TTLs are LangGraph's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import grpc
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from threadline.grpc import BadRequest, abort_on_error
from threadline.ids import check_tenant_id
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc

from threadline_memory.fields import json_object
from threadline_memory.storage import Storage

SERVICE_NAME = memory_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name
MAX_LIMIT = 1000
MAX_TTL_MINUTES = 10 * 366 * 24 * 60  # beyond, an expiry time overflows the stores' datetimes
_MAX_OPS = 1000
_ERASE_PAGE = 500
# What both stores accept in a search filter: SQLite's key rule (it builds SQL from keys) and their operators.
_FILTER_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})


class StoreServicer(memory_pb2_grpc.StoreServiceServicer):
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def Batch(self, request: memory_pb2.StoreBatchRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            if len(request.ops) > _MAX_OPS:
                raise BadRequest(f"at most {_MAX_OPS} operations in one batch")
            ops = [_op_in(tenant, op) for op in request.ops]
            results = await self._storage.run("store_batch", lambda _: self._storage.store.abatch(ops))
        return memory_pb2.StoreBatchResponse(
            results=[_result_out(tenant, op, result) for op, result in zip(ops, results, strict=True)]
        )


async def erase_items(store: BaseStore, namespace_prefix: tuple[str, ...]) -> int:
    """Delete a page of the items under the prefix through the store's own API; 0 when none are left."""
    page = await store.asearch(namespace_prefix, limit=_ERASE_PAGE, refresh_ttl=False)
    if page:
        await store.abatch([PutOp(item.namespace, item.key, None) for item in page])
    return len(page)


def _namespace(tenant: str, path: Sequence[str], field: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not path and not allow_empty:
        raise BadRequest(f"{field} must not be empty")
    for label in path:
        # The stores join namespaces with ".", so a label holding one would name another namespace.
        if not label or "." in label:
            raise BadRequest(f"{field} elements must be non-empty and must not contain '.'")
        if "\x00" in label:  # the stores refuse NUL in a label (and PostgreSQL in any text)
            raise BadRequest(f"{field} elements must not contain NUL")
    return (tenant, *path)


def _key(key: str) -> str:
    if not key:
        raise BadRequest("key is required")
    if "\x00" in key:
        raise BadRequest("key must not contain NUL")
    return key


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _search_filter(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if both stores can search by it, else a BadRequest naming what they refuse (not a 500)."""
    for key, condition in _storable(value, "filter_json").items():
        if not _FILTER_KEY.fullmatch(key):
            raise BadRequest(f"filter key {key!r}: use letters, digits, '_', '.' and '-'")
        if isinstance(condition, dict) and (unknown := set(condition) - _FILTER_OPERATORS):
            known = ", ".join(sorted(_FILTER_OPERATORS))
            raise BadRequest(f"filter on {key!r}: unsupported operator {sorted(unknown)[0]!r}; use {known}")
    return value


def _storable(value: Any, field: str) -> Any:
    """``value`` if the stores can keep it: their JSON encoders take integers of 64 bits, PostgreSQL no NUL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            raise BadRequest(f"{field} must not contain NUL in its strings")
        elif isinstance(item, str) and not item.isascii() and not _is_utf8(item):
            raise BadRequest(f"{field} must not contain lone surrogates in its strings")
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**64:
            raise BadRequest(f"{field} holds an integer beyond 64 bits")
    return value


def _paging(limit: int, offset: int, default: int) -> tuple[int, int]:
    if not 0 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 0 (the default, {default}) to {MAX_LIMIT}")
    if offset < 0:
        raise BadRequest("offset must not be negative")
    return limit or default, offset


def _op_in(tenant: str, op: memory_pb2.StoreOp) -> Op:
    kind = op.WhichOneof("op")
    if kind == "get":
        return GetOp(_namespace(tenant, op.get.namespace, "namespace"), _key(op.get.key), op.get.refresh_ttl)
    if kind == "put":
        put = op.put
        value = None
        if put.HasField("value_json"):
            value = _storable(json_object(put.value_json, "value_json"), "value_json")
        ttl = put.ttl_minutes if put.HasField("ttl_minutes") else None
        if ttl is not None and not 0 < ttl <= MAX_TTL_MINUTES:
            raise BadRequest(f"ttl_minutes must be positive, at most {MAX_TTL_MINUTES} (ten years)")
        # index=False: no vector index is configured, and the stores then skip embedding.
        return PutOp(_namespace(tenant, put.namespace, "namespace"), _key(put.key), value, index=False, ttl=ttl)
    if kind == "search":
        search = op.search
        limit, offset = _paging(search.limit, search.offset, 10)
        return SearchOp(
            _namespace(tenant, search.namespace_prefix, "namespace_prefix", allow_empty=True),
            _search_filter(json_object(search.filter_json, "filter_json")) if search.filter_json else None,
            limit,
            offset,
            search.query or None,
            search.refresh_ttl,
        )
    if kind == "list_namespaces":
        return _list_namespaces_in(tenant, op.list_namespaces)
    raise BadRequest("each op must set one of get, put, search or list_namespaces")


def _list_namespaces_in(tenant: str, op: memory_pb2.StoreListNamespaces) -> ListNamespacesOp:
    conditions: list[MatchCondition] = []
    for match in op.match_conditions:
        for label in match.path:
            if not label or "." in label or "\x00" in label:
                raise BadRequest("match_conditions paths must have non-empty elements without '.' or NUL")
        if match.match_type == "prefix":
            conditions.append(MatchCondition("prefix", (tenant, *match.path)))
        elif match.match_type == "suffix":
            conditions.append(MatchCondition("suffix", tuple(match.path)))
        else:
            raise BadRequest("match_type must be prefix or suffix")
    if not any(c.match_type == "prefix" for c in conditions):
        conditions.append(MatchCondition("prefix", (tenant,)))
    if op.HasField("max_depth") and op.max_depth < 1:
        raise BadRequest("max_depth must be positive")
    limit, offset = _paging(op.limit, op.offset, 100)
    return ListNamespacesOp(tuple(conditions), op.max_depth + 1 if op.HasField("max_depth") else None, limit, offset)


def _item_out(tenant: str, item: Item) -> memory_pb2.StoreItem:
    reply = memory_pb2.StoreItem(
        namespace=_strip(tenant, item.namespace),
        key=item.key,
        value_json=json.dumps(item.value).encode(),
        created_at=_rfc3339(item.created_at),
        updated_at=_rfc3339(item.updated_at),
    )
    score = getattr(item, "score", None)
    if score is not None:
        reply.score = score
    return reply


def _rfc3339(moment: datetime) -> str:
    # The SQLite store hands back naive times, which are UTC (SQLite's CURRENT_TIMESTAMP).
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _strip(tenant: str, namespace: tuple[str, ...]) -> list[str]:
    if namespace[:1] != (tenant,):  # cannot happen: every op was scoped; refuse rather than leak
        raise RuntimeError("store returned a namespace outside the tenant")
    return list(namespace[1:])


def _result_out(tenant: str, op: Op, result: Result) -> memory_pb2.StoreResult:
    if isinstance(op, GetOp):
        item = cast(Item | None, result)
        return memory_pb2.StoreResult(item=_item_out(tenant, item)) if item else memory_pb2.StoreResult()
    if isinstance(op, SearchOp):
        items = cast(list[SearchItem], result)
        return memory_pb2.StoreResult(items=[_item_out(tenant, item) for item in items])
    if isinstance(op, ListNamespacesOp):
        # A suffix pattern as long as the whole namespace could have matched the hidden tenant element.
        shortest = max((len(c.path) for c in op.match_conditions or () if c.match_type == "suffix"), default=0)
        namespaces = [_strip(tenant, ns) for ns in cast(list[tuple[str, ...]], result)]
        return memory_pb2.StoreResult(
            namespaces=[memory_pb2.Namespace(path=ns) for ns in namespaces if len(ns) >= shortest]
        )
    return memory_pb2.StoreResult()
