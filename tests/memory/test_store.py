"""Long-term memory against a real memory service, on SQLite and on PostgreSQL: a LangGraph graph
remembers across threads through the remote store, the BaseStore API behaves as LangGraph's own
stores do, and one tenant can never reach another's items."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import StoreServiceStub, ThreadServiceStub
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.remote.store import RemoteStore
from threadline_memory.server import serve

from tests.memory.conftest import memory_settings


@pytest.fixture
async def store(memory_target: str) -> AsyncIterator[RemoteStore]:
    store = RemoteStore(target=memory_target, tenant_id="acme")
    yield store
    await store.close()


async def test_a_graph_remembers_a_user_across_threads(memory_target: str, store: RemoteStore) -> None:
    """One node writes through get_store(), another reads through the injected store argument."""
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")

    async def note(state: MessagesState, config: RunnableConfig) -> dict:
        user = config["configurable"]["user_id"]
        said = state["messages"][-1].content
        if said.startswith("remember "):
            await get_store().aput(("users", user, "memories"), uuid.uuid4().hex, {"fact": said[9:]})
        return {}

    async def answer(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict:
        user = config["configurable"]["user_id"]
        facts = sorted(item.value["fact"] for item in await store.asearch(("users", user, "memories")))
        return {"messages": [("ai", "; ".join(facts) or "nothing yet")]}

    builder = StateGraph(MessagesState)
    builder.add_node("note", note)
    builder.add_node("answer", answer)
    builder.add_edge(START, "note")
    builder.add_edge("note", "answer")
    builder.add_edge("answer", END)
    graph = builder.compile(checkpointer=saver, store=store)

    def config(thread: str, user: str, tenant: str = "acme") -> RunnableConfig:
        return {"configurable": {"thread_id": thread, "user_id": user, "tenant_id": tenant}}

    try:
        await graph.ainvoke({"messages": [("user", "remember I like tea")]}, config("t1", "ana"))
        await graph.ainvoke({"messages": [("user", "remember I live in Porto")]}, config("t1", "ana"))
        second = await graph.ainvoke({"messages": [("user", "what do you know?")]}, config("t2", "ana"))
        assert second["messages"][-1].content == "I like tea; I live in Porto"

        other_user = await graph.ainvoke({"messages": [("user", "and me?")]}, config("t3", "bo"))
        assert other_user["messages"][-1].content == "nothing yet"
        # The same graph and store, another tenant's run: the tenant comes from the run's config.
        other_tenant = await graph.ainvoke({"messages": [("user", "hi")]}, config("t4", "ana", tenant="globex"))
        assert other_tenant["messages"][-1].content == "nothing yet"
    finally:
        await saver.close()


async def test_put_get_search_list_and_delete(store: RemoteStore) -> None:
    for i in range(5):
        await store.aput(("users", "ana", "memories"), f"m{i}", {"kind": "fact" if i % 2 else "todo", "n": i})
    await store.aput(("users", "bo", "memories"), "m0", {"kind": "fact", "n": 0})
    await store.aput(("users", "ana", "prefs"), "tone", {"value": "brief"}, ttl=60)

    got = await store.aget(("users", "ana", "memories"), "m1")
    assert got is not None and got.value == {"kind": "fact", "n": 1} and got.namespace == ("users", "ana", "memories")
    assert got.created_at.tzinfo is not None
    assert await store.aget(("users", "ana", "memories"), "missing") is None

    facts = await store.asearch(("users", "ana"), filter={"kind": "fact"})
    assert sorted(item.key for item in facts) == ["m1", "m3"]
    big = await store.asearch(("users",), filter={"n": {"$gte": 3}})
    assert sorted(item.key for item in big) == ["m3", "m4"]
    # No vector index is configured: a query does not rank, and is no error either.
    assert len(await store.asearch(("users", "ana", "memories"), query="what does ana like?")) == 5
    pages = [await store.asearch(("users", "ana", "memories"), limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert len({item.key for page in pages for item in page}) == 5

    assert sorted(await store.alist_namespaces()) == [
        ("users", "ana", "memories"),
        ("users", "ana", "prefs"),
        ("users", "bo", "memories"),
    ]
    assert sorted(await store.alist_namespaces(prefix=("users", "ana"))) == [
        ("users", "ana", "memories"),
        ("users", "ana", "prefs"),
    ]
    assert sorted(await store.alist_namespaces(suffix=("memories",))) == [
        ("users", "ana", "memories"),
        ("users", "bo", "memories"),
    ]
    assert sorted(await store.alist_namespaces(max_depth=2)) == [("users", "ana"), ("users", "bo")]
    assert sorted(await store.alist_namespaces(prefix=("users", "*", "prefs"))) == [("users", "ana", "prefs")]

    await store.aput(("users", "ana", "memories"), "m1", {"kind": "fact", "n": 10})
    assert (await store.aget(("users", "ana", "memories"), "m1")).value["n"] == 10  # type: ignore[union-attr]
    await store.adelete(("users", "ana", "memories"), "m1")
    assert await store.aget(("users", "ana", "memories"), "m1") is None

    # The blocking API over the same service (LangGraph's sync graphs use it).
    assert (await asyncio.to_thread(store.get, ("users", "ana", "prefs"), "tone")).value == {"value": "brief"}  # type: ignore[union-attr]
    await asyncio.to_thread(store.put, ("users", "ana", "prefs"), "lang", {"value": "pt"})
    assert len(await asyncio.to_thread(store.search, ("users", "ana", "prefs"))) == 2


async def test_another_tenant_reaches_nothing(memory_target: str, store: RemoteStore) -> None:
    globex = RemoteStore(target=memory_target, tenant_id="globex")
    try:
        await store.aput(("users", "ana", "memories"), "secret", {"fact": "acme's"})
        assert await globex.aget(("users", "ana", "memories"), "secret") is None
        assert await globex.asearch(()) == []
        assert await globex.alist_namespaces() == []
        # The same namespace and key are globex's own item, and writing it leaves acme's alone.
        await globex.aput(("users", "ana", "memories"), "secret", {"fact": "globex's"})
        await globex.adelete(("users", "ana", "memories"), "secret")
        assert (await store.aget(("users", "ana", "memories"), "secret")).value == {"fact": "acme's"}  # type: ignore[union-attr]
        # A tenant named like a prefix of another does not see into it (namespaces match by element).
        acm = RemoteStore(target=memory_target, tenant_id="acm")
        assert await acm.asearch(()) == [] and await acm.alist_namespaces() == []
        await acm.close()
        # No reply names the tenant: it is stripped server-side.
        assert await store.alist_namespaces() == [("users", "ana", "memories")]
    finally:
        await globex.close()


async def test_malformed_operations_are_invalid_argument(memory_target: str) -> None:
    async with grpc.aio.insecure_channel(memory_target) as channel:
        stub = StoreServiceStub(channel)
        for tenant, op in [
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a.b"], key="k", value_json=b"{}"))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=[], key="k", value_json=b"{}"))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="", value_json=b"{}"))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="k", value_json=b"[1]"))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="k", value_json=b"{}", ttl_minutes=-1))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="k", value_json=b"{}", ttl_minutes=1e12))),
            # What the stores cannot keep: NUL in a label, a key or a string; an integer beyond 64 bits.
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a\x00"], key="k", value_json=b"{}"))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="k\x00", value_json=b"{}"))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="k", value_json=b'{"s": "a\\u0000"}'))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="k", value_json=b'{"n": 1' + b"0" * 30 + b"}"))),
            ("acme", pb.StoreOp(search=pb.StoreSearch(filter_json=b'{"n": 1' + b"0" * 30 + b"}"))),
            (
                "acme",
                pb.StoreOp(
                    list_namespaces=pb.StoreListNamespaces(
                        match_conditions=[pb.NamespaceMatch(match_type="prefix", path=["a\x00"])]
                    )
                ),
            ),
            ("acme", pb.StoreOp(search=pb.StoreSearch(limit=5000))),
            ("acme", pb.StoreOp(search=pb.StoreSearch(filter_json=b"nope"))),
            # Filters the stores refuse: an operator they lack, a key SQLite cannot quote, a lone surrogate.
            ("acme", pb.StoreOp(search=pb.StoreSearch(filter_json=b'{"a": {"$in": [1]}}'))),
            ("acme", pb.StoreOp(search=pb.StoreSearch(filter_json=b'{"a\'b": 1}'))),
            ("acme", pb.StoreOp(search=pb.StoreSearch(filter_json=b'{"a": "\\ud800"}'))),
            ("acme", pb.StoreOp(put=pb.StorePut(namespace=["a"], key="k", value_json=b'{"s": "\\ud800"}'))),
            ("acme", pb.StoreOp(list_namespaces=pb.StoreListNamespaces(max_depth=0))),
            ("acme", pb.StoreOp(list_namespaces=pb.StoreListNamespaces(match_conditions=[pb.NamespaceMatch()]))),
            ("acme", pb.StoreOp()),
            ("", pb.StoreOp(get=pb.StoreGet(namespace=["a"], key="k"))),
            ("a:b", pb.StoreOp(get=pb.StoreGet(namespace=["a"], key="k"))),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Batch(pb.StoreBatchRequest(tenant_id=tenant, ops=[op]))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (tenant, op)


async def test_an_item_put_with_a_ttl_expires_and_an_erasure_sweeps_it(database: str, tmp_path: Path) -> None:
    settings = memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")
    async with serve(settings) as port:
        store = RemoteStore(target=f"127.0.0.1:{port}", tenant_id="acme")
        try:
            await store.aput(("users", "ana", "memories"), "brief", {"fact": "for a moment"}, ttl=0.01)  # 0.6 s
            assert await store.aget(("users", "ana", "memories"), "brief", refresh_ttl=False) is not None
            await asyncio.sleep(1.0)
            assert await store.aget(("users", "ana", "memories"), "brief") is None
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="acme", user_id="ana"))
        finally:
            await store.close()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM store").fetchone()[0] == 0  # type: ignore[index]
