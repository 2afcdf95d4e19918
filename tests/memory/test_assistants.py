"""The AssistantService against a real memory service, on SQLite and on PostgreSQL: graphs registered
by an agent get a default assistant every tenant sees; a tenant's own assistants are versioned,
searched by metadata, never visible to another tenant, and erased with the tenant."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psycopg
import pytest
from threadline.assistants import default_assistant_id
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import AssistantServiceStub, ThreadServiceStub
from threadline_memory.server import serve

from tests.memory.conftest import memory_settings

INPUT_SCHEMA = {"type": "object", "properties": {"messages": {"type": "array"}}}
GRAPH = {"nodes": [{"id": "__start__"}, {"id": "agent"}], "edges": [{"source": "__start__", "target": "agent"}]}


@pytest.fixture
async def channel(memory_target: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(memory_target) as channel:
        yield channel


@pytest.fixture
async def assistants(channel: grpc.aio.Channel) -> AssistantServiceStub:
    stub = AssistantServiceStub(channel)
    await register(stub, "agent", "research")
    return stub


async def register(stub: AssistantServiceStub, *graphs: str) -> pb.RegisterGraphsResponse:
    return await stub.RegisterGraphs(
        pb.RegisterGraphsRequest(
            graphs=[
                pb.GraphSchemas(
                    graph_id=g,
                    input_schema_json=json.dumps(INPUT_SCHEMA).encode(),
                    graph_json=json.dumps(GRAPH).encode(),
                )
                for g in graphs
            ]
        )
    )


async def create(stub: AssistantServiceStub, tenant: str, graph: str = "agent", **fields: object) -> pb.Assistant:
    request = pb.CreateAssistantRequest(
        tenant_id=tenant,
        graph_id=graph,
        name=str(fields.pop("name", "")),
        config_json=json.dumps(fields.pop("config", {})).encode(),
        context_json=json.dumps(fields.pop("context", {})).encode(),
        metadata_json=json.dumps(fields).encode(),
    )
    return await stub.CreateAssistant(request)


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value.code()


async def test_registering_graphs_makes_default_assistants_every_tenant_sees_once(
    assistants: AssistantServiceStub,
) -> None:
    again = await register(assistants, "agent", "research")  # a second replica starting
    assert [a.assistant_id for a in again.assistants] == [
        default_assistant_id("agent"),
        default_assistant_id("research"),
    ]
    for tenant in ("acme", "globex"):
        by_name = await assistants.GetAssistant(pb.GetAssistantRequest(tenant_id=tenant, assistant_id="agent"))
        assert by_name.assistant_id == default_assistant_id("agent")
        assert (by_name.graph_id, by_name.name, by_name.version, by_name.system) == ("agent", "agent", 1, True)
        assert json.loads(by_name.metadata_json) == {"created_by": "system"}
        found = await assistants.SearchAssistants(pb.SearchAssistantsRequest(tenant_id=tenant))
        assert {a.graph_id for a in found.assistants} == {"agent", "research"}
    schemas = await assistants.GetGraphSchemas(pb.GetAssistantRequest(tenant_id="acme", assistant_id="research"))
    assert schemas.graph_id == "research"
    assert json.loads(schemas.input_schema_json) == INPUT_SCHEMA
    assert json.loads(schemas.graph_json) == GRAPH
    assert schemas.context_schema_json == b""

    # Nobody's to change: shared by every tenant.
    default = default_assistant_id("agent")
    update = pb.UpdateAssistantRequest(tenant_id="acme", assistant_id=default, name="mine")
    assert await _code(assistants.UpdateAssistant(update)) == grpc.StatusCode.FAILED_PRECONDITION
    delete = pb.DeleteAssistantRequest(tenant_id="acme", assistant_id="agent")
    assert await _code(assistants.DeleteAssistant(delete)) == grpc.StatusCode.FAILED_PRECONDITION


async def test_create_get_update_versions_and_set_latest(assistants: AssistantServiceStub) -> None:
    made = await create(assistants, "acme", name="Support", config={"configurable": {"k": 2}}, team="red")
    uuid.UUID(made.assistant_id)
    assert (made.version, made.name, made.system) == (1, "Support", False)
    assert json.loads(made.config_json) == {"configurable": {"k": 2}}

    update = pb.UpdateAssistantRequest(
        tenant_id="acme",
        assistant_id=made.assistant_id,
        context_json=b'{"tone": "brief"}',
        metadata_json=b'{"stage": "beta"}',
    )
    second = await assistants.UpdateAssistant(update)
    assert second.version == 2
    assert json.loads(second.metadata_json) == {"team": "red", "stage": "beta"}
    assert json.loads(second.context_json) == {"tone": "brief"}
    assert json.loads(second.config_json) == {"configurable": {"k": 2}}  # kept
    assert second.created_at == made.created_at

    versions = await assistants.ListAssistantVersions(
        pb.ListAssistantVersionsRequest(tenant_id="acme", assistant_id=made.assistant_id)
    )
    assert [v.version for v in versions.versions] == [2, 1]
    beta = await assistants.ListAssistantVersions(
        pb.ListAssistantVersionsRequest(
            tenant_id="acme", assistant_id=made.assistant_id, metadata_filter_json=b'{"stage": "beta"}'
        )
    )
    assert [v.version for v in beta.versions] == [2]

    first = await assistants.SetLatestVersion(
        pb.SetLatestVersionRequest(tenant_id="acme", assistant_id=made.assistant_id, version=1)
    )
    assert first.version == 1
    assert json.loads(first.context_json) == {}
    got = await assistants.GetAssistant(pb.GetAssistantRequest(tenant_id="acme", assistant_id=made.assistant_id))
    assert (got.version, json.loads(got.metadata_json)) == (1, {"team": "red"})
    third = await assistants.UpdateAssistant(
        pb.UpdateAssistantRequest(tenant_id="acme", assistant_id=made.assistant_id, name="Support 3")
    )
    assert third.version == 3  # after the highest, not after the latest

    missing = pb.SetLatestVersionRequest(tenant_id="acme", assistant_id=made.assistant_id, version=9)
    assert await _code(assistants.SetLatestVersion(missing)) == grpc.StatusCode.NOT_FOUND
    taken = pb.CreateAssistantRequest(tenant_id="acme", assistant_id=made.assistant_id, graph_id="agent")
    assert await _code(assistants.CreateAssistant(taken)) == grpc.StatusCode.ALREADY_EXISTS
    same = await assistants.CreateAssistant(
        pb.CreateAssistantRequest(
            tenant_id="acme", assistant_id=made.assistant_id, graph_id="agent", if_exists_do_nothing=True
        )
    )
    assert same.version == 3
    unknown = pb.CreateAssistantRequest(tenant_id="acme", graph_id="nope")
    assert await _code(assistants.CreateAssistant(unknown)) == grpc.StatusCode.NOT_FOUND
    not_uuid = pb.CreateAssistantRequest(tenant_id="acme", assistant_id="mine", graph_id="agent")
    assert await _code(assistants.CreateAssistant(not_uuid)) == grpc.StatusCode.INVALID_ARGUMENT

    await assistants.DeleteAssistant(pb.DeleteAssistantRequest(tenant_id="acme", assistant_id=made.assistant_id))
    gone = pb.GetAssistantRequest(tenant_id="acme", assistant_id=made.assistant_id)
    assert await _code(assistants.GetAssistant(gone)) == grpc.StatusCode.NOT_FOUND
    listing = pb.ListAssistantVersionsRequest(tenant_id="acme", assistant_id=made.assistant_id)
    assert await _code(assistants.ListAssistantVersions(listing)) == grpc.StatusCode.NOT_FOUND


async def test_search_by_graph_name_and_metadata_sorts_pages_and_counts(assistants: AssistantServiceStub) -> None:
    red = [await create(assistants, "acme", name=f"Red {i}", team="red") for i in range(3)]
    await create(assistants, "acme", "research", name="Blue", team="blue")

    def search(**fields: object) -> pb.SearchAssistantsRequest:
        metadata = fields.pop("metadata", None)
        filter_json = json.dumps(metadata).encode() if metadata else b""
        return pb.SearchAssistantsRequest(tenant_id="acme", metadata_filter_json=filter_json, **fields)  # type: ignore[arg-type]

    found = await assistants.SearchAssistants(search(metadata={"team": "red"}))
    assert [a.assistant_id for a in found.assistants] == [a.assistant_id for a in reversed(red)]  # newest first
    page = await assistants.SearchAssistants(search(metadata={"team": "red"}, limit=2, offset=1, sort_order="asc"))
    assert [a.assistant_id for a in page.assistants] == [red[1].assistant_id, red[2].assistant_id]
    assert (await assistants.CountAssistants(search(metadata={"team": "red"}))).count == 3
    assert (await assistants.CountAssistants(search(graph_id="research"))).count == 2  # Blue and the default
    named = await assistants.SearchAssistants(search(name="blu"))
    assert [a.name for a in named.assistants] == ["Blue"]
    by_name = await assistants.SearchAssistants(search(sort_by="name", sort_order="asc", limit=100))
    assert [a.name for a in by_name.assistants] == ["Blue", "Red 0", "Red 1", "Red 2", "agent", "research"]
    assert await _code(assistants.SearchAssistants(search(sort_by="nope"))) == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_tenant_finds_nothing_and_erasure_deletes_a_tenants_assistants(
    assistants: AssistantServiceStub, channel: grpc.aio.Channel
) -> None:
    mine = await create(assistants, "acme", name="Mine")
    theirs = await create(assistants, "globex", name="Theirs")
    for call, request in [
        (assistants.GetAssistant, pb.GetAssistantRequest(tenant_id="globex", assistant_id=mine.assistant_id)),
        (assistants.UpdateAssistant, pb.UpdateAssistantRequest(tenant_id="globex", assistant_id=mine.assistant_id)),
        (assistants.DeleteAssistant, pb.DeleteAssistantRequest(tenant_id="globex", assistant_id=mine.assistant_id)),
        (
            assistants.ListAssistantVersions,
            pb.ListAssistantVersionsRequest(tenant_id="globex", assistant_id=mine.assistant_id),
        ),
        (
            assistants.SetLatestVersion,
            pb.SetLatestVersionRequest(tenant_id="globex", assistant_id=mine.assistant_id, version=1),
        ),
    ]:
        assert await _code(call(request)) == grpc.StatusCode.NOT_FOUND  # type: ignore[operator]
    listed = await assistants.SearchAssistants(pb.SearchAssistantsRequest(tenant_id="globex"))
    assert {a.name for a in listed.assistants} == {"Theirs", "agent", "research"}

    erased = await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="acme"))
    assert erased.assistants == 1
    gone = pb.GetAssistantRequest(tenant_id="acme", assistant_id=mine.assistant_id)
    assert await _code(assistants.GetAssistant(gone)) == grpc.StatusCode.NOT_FOUND
    # The default assistants and another tenant's stay; erasing a user keeps the tenant's assistants.
    assert (await assistants.CountAssistants(pb.SearchAssistantsRequest(tenant_id="acme"))).count == 2
    kept = pb.GetAssistantRequest(tenant_id="globex", assistant_id=theirs.assistant_id)
    assert (await assistants.GetAssistant(kept)).name == "Theirs"
    one_user = await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="globex", user_id="ana"))
    assert one_user.assistants == 0
    assert (await assistants.GetAssistant(kept)).name == "Theirs"


def _pg_tables(database: str) -> set[str]:
    with psycopg.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


async def test_an_existing_postgres_database_from_before_assistants_is_migrated(database: str, tmp_path: Path) -> None:
    settings = memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")
    async with serve(settings):
        pass
    with psycopg.connect(database, autocommit=True) as conn:
        # As a database migrated by the release before the assistant registry left it: steps 0-3 only.
        conn.execute("DROP TABLE threadline_assistants, threadline_assistant_versions, threadline_graphs")
        conn.execute("DELETE FROM threadline_memory_migrations WHERE v > 3")
        conn.execute("INSERT INTO threadline_threads (tenant_id, thread_id) VALUES ('acme', 'kept')")
    assert "threadline_assistants" not in _pg_tables(database)
    async with serve(settings) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = AssistantServiceStub(channel)
        await register(stub, "agent")
        made = await create(stub, "acme", name="After the upgrade")
        assert made.version == 1
        kept = await ThreadServiceStub(channel).GetThread(pb.GetThreadRequest(tenant_id="acme", thread_id="kept"))
        assert kept.thread_id == "kept"
    with psycopg.connect(database) as conn:
        steps = [row[0] for row in conn.execute("SELECT v FROM threadline_memory_migrations ORDER BY v")]
    assert steps == list(range(9))  # every step, the crons' (7-8) too


async def test_an_existing_sqlite_file_from_before_assistants_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.sqlite"
    settings = memory_settings(database_url=None, sqlite_path=path)
    async with serve(settings):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE threadline_assistants")
        conn.execute("DROP TABLE threadline_assistant_versions")
        conn.execute("DROP TABLE threadline_graphs")
        conn.execute("DELETE FROM threadline_memory_migrations WHERE v > 1")
    async with serve(settings) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = AssistantServiceStub(channel)
        await register(stub, "agent")
        made = await create(stub, "acme", name="After the upgrade")
        assert made.version == 1
    with sqlite3.connect(path) as conn:
        steps = [row[0] for row in conn.execute("SELECT v FROM threadline_memory_migrations ORDER BY v")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert steps == list(range(7))  # every step, the crons' (5-6) too
    assert {"threadline_assistants", "threadline_assistant_versions", "threadline_graphs"} <= tables
