"""``/langgraph/store``: the long-term store (LangGraph's ``BaseStore``) as ``client.store`` of the SDK calls it.

Items live in the memory service's ``StoreService``, which puts the caller's tenant in front of every
namespace and strips it from replies: another tenant's items cannot be named, so they read as absent.
Namespace labels are non-empty and hold no ``.`` (the SDK's ``get_item`` joins them with dots).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from threadline_gateway.deps import Caller, MemoryClient
from threadline_gateway.memory import StoreItem
from threadline_gateway.schemas import error_responses

router = APIRouter(prefix="/store")

_TEN_YEARS_MIN = 10 * 366 * 24 * 60
_Label = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^.\x00]+$")]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ItemPut(_Lenient):
    namespace: list[_Label] = Field(min_length=1, max_length=32)
    key: str = Field(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")
    value: dict[str, Any]
    ttl: float | None = Field(
        default=None, gt=0, le=_TEN_YEARS_MIN, description="Minutes after its last write; none: kept."
    )
    index: Any = Field(default=None, description="Accepted and ignored: the store has no vector index yet.")


class ItemDelete(_Lenient):
    namespace: list[_Label] = Field(min_length=1, max_length=32)
    key: str = Field(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")


class ItemSearch(_Lenient):
    namespace_prefix: list[_Label] = Field(default_factory=list, max_length=32)
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    query: str | None = Field(default=None, description="Passed on; items come back by filter and recency.")
    refresh_ttl: bool | None = None


class NamespaceSearch(_Lenient):
    prefix: list[_Label] | None = Field(default=None, max_length=32, description="Labels; '*' matches any one.")
    suffix: list[_Label] | None = Field(default=None, max_length=32, description="Labels; '*' matches any one.")
    max_depth: int | None = Field(default=None, ge=1, le=32)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class Item(BaseModel):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: str
    updated_at: str


class SearchItem(Item):
    score: float | None = None


class SearchItems(BaseModel):
    items: list[SearchItem]


class Namespaces(BaseModel):
    namespaces: list[list[str]]


def _item(found: StoreItem) -> Item:
    fields = asdict(found)
    fields.pop("score")
    return Item(**fields)


@router.put("/items", status_code=204, responses=error_responses(422, 503))
async def put_item(body: ItemPut, principal: Caller, memory: MemoryClient) -> Response:
    """Create or replace the item at ``namespace`` and ``key``."""
    await memory.store_put(principal.tenant_id, body.namespace, body.key, body.value, body.ttl)
    return Response(status_code=204)


@router.get("/items", response_model=Item | None, responses=error_responses(422, 503))
async def get_item(
    principal: Caller,
    memory: MemoryClient,
    namespace: Annotated[
        str,
        Query(
            max_length=8192,
            pattern=r"^[^.\x00]+(\.[^.\x00]+)*$",
            description="Its labels joined with '.', none of them empty.",
        ),
    ],
    key: Annotated[str, Query(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")],
    refresh_ttl: Annotated[bool, Query()] = False,
) -> Item | None:
    """The item, or ``null`` when there is none (in the caller's tenant)."""
    found = await memory.store_get(principal.tenant_id, namespace.split("."), key, refresh_ttl=refresh_ttl)
    return _item(found) if found else None


@router.delete("/items", status_code=204, responses=error_responses(422, 503))
async def delete_item(body: ItemDelete, principal: Caller, memory: MemoryClient) -> Response:
    await memory.store_put(principal.tenant_id, body.namespace, body.key, None)
    return Response(status_code=204)


@router.post("/items/search", response_model=SearchItems, responses=error_responses(422, 503))
async def search_items(body: ItemSearch, principal: Caller, memory: MemoryClient) -> SearchItems:
    """Items under ``namespace_prefix`` whose values match ``filter``, most recently updated first."""
    found = await memory.store_search(
        principal.tenant_id,
        body.namespace_prefix,
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        query=body.query,
        refresh_ttl=bool(body.refresh_ttl),
    )
    return SearchItems(items=[SearchItem(**asdict(f)) for f in found])


@router.post("/namespaces", response_model=Namespaces, responses=error_responses(422, 503))
async def list_namespaces(body: NamespaceSearch, principal: Caller, memory: MemoryClient) -> Namespaces:
    """The namespaces holding items, matching ``prefix`` and ``suffix`` (``*`` matches any one label)."""
    found = await memory.store_namespaces(
        principal.tenant_id,
        prefix=body.prefix,
        suffix=body.suffix,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return Namespaces(namespaces=found)
