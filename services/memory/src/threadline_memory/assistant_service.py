"""The gRPC AssistantService: assistants as data, per tenant, with versions; the graphs the agents serve.

Scoped like threads: every call names its tenant, and another tenant's assistant is NOT_FOUND,
exactly as one that never existed. The graphs' default assistants are every tenant's to read and
run, and no tenant's to change (FAILED_PRECONDITION). See :mod:`threadline_memory.assistants`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
from threadline.grpc import BadRequest, abort_on_error
from threadline.ids import check_tenant_id, is_graph_id
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc

from threadline_memory.assistants import (
    SCHEMA_KINDS,
    AssistantExists,
    AssistantRow,
    AssistantSortBy,
    Changes,
    GraphRow,
    ReadOnly,
    SortOrder,
    UnknownGraph,
)
from threadline_memory.fields import json_object
from threadline_memory.storage import Storage

SERVICE_NAME = memory_pb2.DESCRIPTOR.services_by_name["AssistantService"].full_name
_MAX_LIMIT = 1000
_SORT_BY: tuple[AssistantSortBy, ...] = ("updated_at", "created_at", "assistant_id", "graph_id", "name")
_SORT_ORDER: tuple[SortOrder, ...] = ("desc", "asc")
_MAX_NAME = 256


class AssistantServicer(memory_pb2_grpc.AssistantServiceServicer):
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._assistants = storage.assistants

    async def CreateAssistant(
        self, request: memory_pb2.CreateAssistantRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            assistant_id = _uuid(request.assistant_id) if request.assistant_id else str(uuid.uuid4())
            row = AssistantRow(
                assistant_id=assistant_id,
                graph_id=_graph_id(request.graph_id),
                name=_name(request.name) or "Untitled",
                description=request.description if request.HasField("description") else None,
                config=_object(request.config_json, "config_json"),
                context=_object(request.context_json, "context_json"),
                metadata=_object(request.metadata_json, "metadata_json"),
                version=1,
                created_at="",
                updated_at="",
            )
            try:
                created = await self._storage.run(
                    "create_assistant",
                    lambda _: self._assistants.create(tenant, row, if_exists_do_nothing=request.if_exists_do_nothing),
                )
            except AssistantExists:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"assistant {assistant_id!r} already exists")
            except UnknownGraph:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no graph {row.graph_id!r}: no agent serves it")
        return assistant_out(created)

    async def GetAssistant(self, request: memory_pb2.GetAssistantRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant, assistant_id = check_tenant_id(request.tenant_id), _assistant_id(request.assistant_id)
            found = await self._storage.run("get_assistant", lambda _: self._assistants.get(tenant, assistant_id))
        return await _found(context, found, assistant_id)

    async def UpdateAssistant(
        self, request: memory_pb2.UpdateAssistantRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant, assistant_id = check_tenant_id(request.tenant_id), _assistant_id(request.assistant_id)
            changes = Changes(
                graph_id=_graph_id(request.graph_id) if request.graph_id else None,
                name=_name(request.name) or None,
                description=request.description if request.HasField("description") else None,
                config=_object(request.config_json, "config_json") if request.HasField("config_json") else None,
                context=_object(request.context_json, "context_json") if request.HasField("context_json") else None,
                metadata=_object(request.metadata_json, "metadata_json"),
            )
            updated = await self._changing(
                context,
                assistant_id,
                lambda: self._storage.run(
                    "update_assistant", lambda _: self._assistants.update(tenant, assistant_id, changes)
                ),
            )
        return await _found(context, updated, assistant_id)

    async def SetLatestVersion(
        self, request: memory_pb2.SetLatestVersionRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant, assistant_id = check_tenant_id(request.tenant_id), _assistant_id(request.assistant_id)
            if request.version < 1:
                raise BadRequest("version must be 1 or more")
            updated = await self._changing(
                context,
                assistant_id,
                lambda: self._storage.run(
                    "set_latest_assistant",
                    lambda _: self._assistants.set_latest(tenant, assistant_id, request.version),
                ),
            )
        if updated is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no version {request.version} of assistant {assistant_id!r}"
            )
        return assistant_out(updated)

    async def SearchAssistants(
        self, request: memory_pb2.SearchAssistantsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            limit, offset = _page(request.limit, request.offset)
            rows = await self._search(request)
        return memory_pb2.SearchAssistantsResponse(assistants=[assistant_out(r) for r in rows[offset : offset + limit]])

    async def CountAssistants(
        self, request: memory_pb2.SearchAssistantsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            rows = await self._search(request)
        return memory_pb2.CountAssistantsResponse(count=len(rows))

    async def DeleteAssistant(
        self, request: memory_pb2.DeleteAssistantRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant, assistant_id = check_tenant_id(request.tenant_id), _assistant_id(request.assistant_id)
            deleted = await self._changing(
                context,
                assistant_id,
                lambda: self._storage.run("delete_assistant", lambda _: self._assistants.delete(tenant, assistant_id)),
            )
        if not deleted:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no assistant {assistant_id!r}")
        return memory_pb2.DeleteAssistantResponse()

    async def ListAssistantVersions(
        self, request: memory_pb2.ListAssistantVersionsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant, assistant_id = check_tenant_id(request.tenant_id), _assistant_id(request.assistant_id)
            limit, offset = _page(request.limit, request.offset)
            metadata = _object(request.metadata_filter_json, "metadata_filter_json")
            rows = await self._storage.run(
                "list_assistant_versions", lambda _: self._assistants.versions(tenant, assistant_id, metadata)
            )
        if rows is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no assistant {assistant_id!r}")
        return memory_pb2.ListAssistantVersionsResponse(
            versions=[assistant_out(r) for r in rows[offset : offset + limit]]
        )

    async def RegisterGraphs(self, request: memory_pb2.RegisterGraphsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            graphs = [
                GraphRow(
                    _graph_id(g.graph_id),
                    {
                        kind: _object(data, f"{kind}_schema_json")
                        for kind in SCHEMA_KINDS
                        if (data := getattr(g, "graph_json" if kind == "graph" else f"{kind}_schema_json"))
                    },
                )
                for g in request.graphs
            ]
            defaults: list[AssistantRow] = []
            for graph in graphs:

                async def register(_: object, graph: GraphRow = graph) -> AssistantRow:
                    return await self._assistants.register_graph(graph)

                defaults.append(await self._storage.run("register_graph", register))
        return memory_pb2.RegisterGraphsResponse(assistants=[assistant_out(r) for r in defaults])

    async def GetGraphSchemas(self, request: memory_pb2.GetAssistantRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant, assistant_id = check_tenant_id(request.tenant_id), _assistant_id(request.assistant_id)

            async def schemas(_: object) -> GraphRow | None:
                found = await self._assistants.get(tenant, assistant_id)
                return None if found is None else await self._assistants.graph(found.graph_id)

            graph = await self._storage.run("get_graph_schemas", schemas)
        if graph is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no assistant {assistant_id!r}")
        s = graph.schemas

        def out(kind: str) -> bytes:
            return json.dumps(s[kind]).encode() if kind in s else b""

        return memory_pb2.GraphSchemas(
            graph_id=graph.graph_id,
            input_schema_json=out("input"),
            output_schema_json=out("output"),
            state_schema_json=out("state"),
            config_schema_json=out("config"),
            context_schema_json=out("context"),
            graph_json=out("graph"),
        )

    async def _search(self, request: memory_pb2.SearchAssistantsRequest) -> list[AssistantRow]:
        tenant = check_tenant_id(request.tenant_id)
        metadata = _object(request.metadata_filter_json, "metadata_filter_json")
        sort_by = _choice(request.sort_by or "updated_at", _SORT_BY, "sort_by")
        sort_order = _choice(request.sort_order or "desc", _SORT_ORDER, "sort_order")
        return await self._storage.run(
            "search_assistants",
            lambda _: self._assistants.search(
                tenant,
                graph_id=request.graph_id,
                name=request.name,
                metadata=metadata,
                sort_by=sort_by,  # type: ignore[arg-type]
                sort_order=sort_order,  # type: ignore[arg-type]
            ),
        )

    async def _changing(self, context: grpc.aio.ServicerContext, assistant_id: str, change: Any) -> Any:
        """Run ``change``; a default assistant is FAILED_PRECONDITION, an unknown graph NOT_FOUND."""
        try:
            return await change()
        except ReadOnly:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"assistant {assistant_id!r} is a graph's default assistant, shared by every tenant: "
                "create an assistant of that graph to change it",
            )
        except UnknownGraph as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no graph {exc.args[0]!r}: no agent serves it")


def assistant_out(row: AssistantRow) -> memory_pb2.Assistant:
    out = memory_pb2.Assistant(
        assistant_id=row.assistant_id,
        graph_id=row.graph_id,
        name=row.name,
        config_json=json.dumps(row.config).encode(),
        context_json=json.dumps(row.context).encode(),
        metadata_json=json.dumps(row.metadata).encode(),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        system=row.system,
    )
    if row.description is not None:
        out.description = row.description
    return out


async def _found(
    context: grpc.aio.ServicerContext, row: AssistantRow | None, assistant_id: str
) -> memory_pb2.Assistant:
    if row is None:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no assistant {assistant_id!r}")
    return assistant_out(row)


def _object(data: bytes, field: str) -> dict[str, Any]:
    return json_object(data, field) if data else {}


def _assistant_id(value: str) -> str:
    if not value:
        raise BadRequest("assistant_id is required")
    return value


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(f"assistant_id must be a UUID (got {value[:70]!r})") from None


def _graph_id(value: str) -> str:
    if not is_graph_id(value):
        raise BadRequest("graph_id must be 1-64 letters, digits, '_' or '-', the first a letter or digit")
    return value


def _name(value: str) -> str:
    if len(value) > _MAX_NAME:
        raise BadRequest(f"name must be at most {_MAX_NAME} characters")
    return value


def _page(limit: int, offset: int) -> tuple[int, int]:
    if not 0 <= limit <= _MAX_LIMIT:
        raise BadRequest(f"limit must be 0 (the default, 10) to {_MAX_LIMIT}")
    if offset < 0:
        raise BadRequest("offset must not be negative")
    return limit or 10, offset


def _choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise BadRequest(f"{field} must be one of {', '.join(allowed)}")
    return value
