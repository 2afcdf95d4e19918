"""``/langgraph/assistants``: assistants as data, as LangGraph Platform has them and ``client.assistants`` calls them.

An assistant is a graph with its own config, context, name, description and metadata, kept in
numbered versions in the memory service's registry. Each graph an agent serves has a default
assistant (made by the system, metadata ``created_by: system``), which every tenant sees and runs,
addressed by its id or the graph's name, and which no tenant can change; the assistants a tenant
creates are its own. ``update`` adds a version and makes it the latest; ``set_latest`` goes back to one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from threadline.ids import ID_PATTERN

from threadline_gateway.deps import Caller, MemoryClient
from threadline_gateway.errors import ApiError
from threadline_gateway.langgraph_compat.schemas import (
    Assistant,
    AssistantCount,
    AssistantCreate,
    AssistantLatest,
    AssistantPatch,
    AssistantSearch,
    AssistantVersion,
    AssistantVersionsRequest,
    DrawableGraph,
    GraphSchemas,
)
from threadline_gateway.memory import Assistant as Record
from threadline_gateway.schemas import error_responses

router = APIRouter(prefix="/assistants")
AssistantId = Annotated[str, Path(pattern=ID_PATTERN, description="An assistant's id, or a graph's name.")]
_THREAD_PAGE = 500


def assistant_out(record: Record) -> Assistant:
    return Assistant(
        assistant_id=record.assistant_id,
        graph_id=record.graph_id,
        name=record.name,
        description=record.description,
        config=record.config,
        context=record.context,
        metadata=record.metadata,
        version=record.version,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


@router.post("", response_model=Assistant, responses=error_responses(404, 409, 422, 503))
async def create_assistant(body: AssistantCreate, principal: Caller, memory: MemoryClient) -> Assistant:
    """A new assistant of a graph an agent serves (a 404 for any other), at version 1."""
    created = await memory.create_assistant(
        principal.tenant_id,
        graph_id=body.graph_id,
        assistant_id=str(body.assistant_id or ""),
        name=body.name or "",
        description=body.description,
        config=body.config,
        context=body.context,
        metadata=body.metadata,
        if_exists_do_nothing=body.if_exists == "do_nothing",
    )
    return assistant_out(created)


@router.post("/search", response_model=list[Assistant], responses=error_responses(422, 503))
async def search_assistants(
    body: AssistantSearch, principal: Caller, memory: MemoryClient, response: Response
) -> list[Assistant]:
    """The assistants the caller sees (its own and the graphs' default ones); ``X-Pagination-Next`` when more follow."""
    found = await memory.search_assistants(
        principal.tenant_id,
        graph_id=body.graph_id,
        name=body.name,
        metadata=body.metadata,
        limit=min(body.limit + 1, 1000),  # one more tells whether a next page exists (the service's most: 1000)
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    if len(found) > body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return [assistant_out(a) for a in found[: body.limit]]


@router.post("/count", response_model=int, responses=error_responses(422, 503))
async def count_assistants(body: AssistantCount, principal: Caller, memory: MemoryClient) -> int:
    return await memory.count_assistants(
        principal.tenant_id, graph_id=body.graph_id, name=body.name, metadata=body.metadata
    )


@router.get("/{assistant_id}", response_model=Assistant, responses=error_responses(404, 503))
async def get_assistant(assistant_id: AssistantId, principal: Caller, memory: MemoryClient) -> Assistant:
    return assistant_out(await memory.get_assistant(principal.tenant_id, assistant_id))


@router.patch("/{assistant_id}", response_model=Assistant, responses=error_responses(404, 409, 422, 503))
async def update_assistant(
    assistant_id: AssistantId, body: AssistantPatch, principal: Caller, memory: MemoryClient
) -> Assistant:
    """A new version, made the latest: the fields given replace the previous version's; metadata is merged.
    A graph's default assistant is every tenant's: a 409 ``read_only``."""
    updated = await memory.update_assistant(
        principal.tenant_id,
        assistant_id,
        graph_id=body.graph_id,
        name=body.name,
        description=body.description,
        config=body.config,
        context=body.context,
        metadata=body.metadata,
    )
    return assistant_out(updated)


@router.delete("/{assistant_id}", status_code=204, responses=error_responses(404, 409, 503))
async def delete_assistant(
    assistant_id: AssistantId,
    principal: Caller,
    memory: MemoryClient,
    delete_threads: Annotated[
        bool, Query(description="Also delete the caller's threads whose metadata names this assistant.")
    ] = False,
) -> Response:
    """Delete the assistant and every version of it (a graph's default assistant: a 409 ``read_only``)."""
    found = await memory.get_assistant(principal.tenant_id, assistant_id)
    await memory.delete_assistant(principal.tenant_id, assistant_id)
    if delete_threads:
        for named in {assistant_id, found.assistant_id}:
            while threads := await memory.list_threads(
                principal.tenant_id, metadata={"assistant_id": named}, limit=_THREAD_PAGE, offset=0
            ):
                for thread in threads:
                    await memory.delete_thread(principal.tenant_id, thread.thread_id)
    return Response(status_code=204)


@router.post("/{assistant_id}/latest", response_model=Assistant, responses=error_responses(404, 409, 422, 503))
async def set_latest_version(
    assistant_id: AssistantId, body: AssistantLatest, principal: Caller, memory: MemoryClient
) -> Assistant:
    """Make an earlier (or later) version the latest; a 404 for a version that does not exist."""
    return assistant_out(await memory.set_latest_assistant(principal.tenant_id, assistant_id, body.version))


@router.post("/{assistant_id}/versions", response_model=list[AssistantVersion], responses=error_responses(404, 503))
async def assistant_versions(
    assistant_id: AssistantId, body: AssistantVersionsRequest, principal: Caller, memory: MemoryClient
) -> list[AssistantVersion]:
    """Every version of the assistant, newest first."""
    versions = await memory.assistant_versions(
        principal.tenant_id, assistant_id, metadata=body.metadata, limit=body.limit, offset=body.offset
    )
    return [AssistantVersion.model_validate(assistant_out(v).model_dump(exclude={"updated_at"})) for v in versions]


@router.get("/{assistant_id}/schemas", response_model=GraphSchemas, responses=error_responses(404, 503))
async def assistant_schemas(assistant_id: AssistantId, principal: Caller, memory: MemoryClient) -> GraphSchemas:
    """The JSON schemas of the assistant's graph (input, output, state, config, context), as registered."""
    s = await memory.graph_schemas(principal.tenant_id, assistant_id)
    return GraphSchemas(
        graph_id=s.graph_id,
        input_schema=s.input_schema,
        output_schema=s.output_schema,
        state_schema=s.state_schema,
        config_schema=s.config_schema,
        context_schema=s.context_schema,
    )


@router.get("/{assistant_id}/graph", response_model=DrawableGraph, responses=error_responses(404, 501, 503))
async def assistant_graph(
    assistant_id: AssistantId,
    principal: Caller,
    memory: MemoryClient,
    xray: Annotated[bool | int, Query(description="Accepted; subgraphs are not drawn.")] = False,
) -> Any:
    """The assistant's graph as nodes and edges, to draw. A 501 ``not_available`` for a graph built per
    run from the run's config (its shape is known only then)."""
    s = await memory.graph_schemas(principal.tenant_id, assistant_id)
    if not s.graph:
        raise ApiError(
            501,
            "not_available",
            f"The graph {s.graph_id!r} is built for each run from the run's config; its nodes are known only then.",
        )
    return DrawableGraph(nodes=s.graph.get("nodes", []), edges=s.graph.get("edges", []))


@router.get("/{assistant_id}/subgraphs", response_model=dict[str, GraphSchemas], responses=error_responses(404, 503))
async def assistant_subgraphs(assistant_id: AssistantId, principal: Caller, memory: MemoryClient) -> dict[str, Any]:
    """Subgraphs are not registered: none (once the assistant is known to exist)."""
    await memory.get_assistant(principal.tenant_id, assistant_id)
    return {}
