"""``/api/v1/assistants``: the assistants a tenant may run — create, list, read, change (a new version), delete.

An assistant is a graph with its own config (``configurable``, ``tags``, ``recursion_limit``),
context, name, description and metadata; a run names it by ``assistant_id`` and gets its config
and context under the run's own. Each graph an agent serves has a default assistant, listed to
every tenant and named by the graph (``agent``), which no tenant can change; the ones a tenant
creates are its alone. They live in the memory service's registry (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from threadline.ids import ID_PATTERN

from threadline_gateway.deps import Caller, MemoryClient
from threadline_gateway.memory import Assistant
from threadline_gateway.schemas import (
    ASSISTANT_PAGE_MAX,
    AssistantCreate,
    AssistantInfo,
    AssistantPage,
    AssistantPatch,
    AssistantSortBy,
    SortOrder,
    error_responses,
)

router = APIRouter(prefix="/api/v1/assistants", tags=["assistants"])
log = structlog.get_logger("threadline.gateway")
AssistantId = Annotated[str, Path(pattern=ID_PATTERN, description="An assistant's id, or a graph's name.")]


def _info(assistant: Assistant) -> AssistantInfo:
    return AssistantInfo(
        assistant_id=assistant.assistant_id,
        graph_id=assistant.graph_id,
        name=assistant.name,
        description=assistant.description,
        config=assistant.config,
        context=assistant.context,
        metadata=assistant.metadata,
        version=assistant.version,
        created_at=assistant.created_at,
        updated_at=assistant.updated_at,
        default=assistant.system,
    )


@router.post("", status_code=201, response_model=AssistantInfo, responses=error_responses(404, 409, 503))
async def create_assistant(body: AssistantCreate, principal: Caller, memory: MemoryClient) -> AssistantInfo:
    """A new assistant of a graph the agents serve (a 404 for any other); a 409 if its id is taken."""
    created = await memory.create_assistant(
        principal.tenant_id,
        graph_id=body.graph_id,
        assistant_id=str(body.assistant_id or ""),
        name=body.name or "",
        description=body.description,
        config=body.config.model_dump(exclude_defaults=True),
        context=body.context,
        metadata=body.metadata,
    )
    log.info("assistant created", assistant_id=created.assistant_id, graph_id=created.graph_id)
    return _info(created)


@router.get("", response_model=AssistantPage, responses=error_responses(503))
async def list_assistants(
    principal: Caller,
    memory: MemoryClient,
    graph_id: Annotated[str | None, Query(max_length=64, description="Only this graph's assistants.")] = None,
    limit: Annotated[int, Query(ge=1, le=ASSISTANT_PAGE_MAX)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    sort_by: AssistantSortBy = "updated_at",
    sort_order: SortOrder = "desc",
) -> AssistantPage:
    """The assistants the caller may run (the graphs' default ones and its own), a page at a time."""
    found = await memory.search_assistants(
        principal.tenant_id,
        graph_id=graph_id,
        limit=limit + 1,  # one more tells whether a next page exists
        offset=offset,
        sort_by=sort_by,
        sort_order=sort_order,
    )
    more = len(found) > limit
    return AssistantPage(assistants=[_info(a) for a in found[:limit]], next_offset=offset + limit if more else None)


@router.get("/{assistant_id}", response_model=AssistantInfo, responses=error_responses(404, 503))
async def get_assistant(assistant_id: AssistantId, principal: Caller, memory: MemoryClient) -> AssistantInfo:
    return _info(await memory.get_assistant(principal.tenant_id, assistant_id))


@router.patch("/{assistant_id}", response_model=AssistantInfo, responses=error_responses(404, 409, 503))
async def update_assistant(
    assistant_id: AssistantId, body: AssistantPatch, principal: Caller, memory: MemoryClient
) -> AssistantInfo:
    """A new version, made the latest: the fields sent replace the previous version's, metadata is merged.
    A graph's default assistant is every tenant's: a 409 ``read_only``."""
    updated = await memory.update_assistant(
        principal.tenant_id,
        assistant_id,
        graph_id=body.graph_id,
        name=body.name,
        description=body.description,
        config=None if body.config is None else body.config.model_dump(exclude_defaults=True),
        context=body.context,
        metadata=body.metadata,
    )
    return _info(updated)


@router.delete("/{assistant_id}", status_code=204, responses=error_responses(404, 409, 503))
async def delete_assistant(assistant_id: AssistantId, principal: Caller, memory: MemoryClient) -> Response:
    """Delete the assistant and its versions (its threads stay); a graph's default one is a 409 ``read_only``."""
    await memory.delete_assistant(principal.tenant_id, assistant_id)
    log.info("assistant deleted", assistant_id=assistant_id)
    return Response(status_code=204)
