"""What real LangGraph clients call beyond runs and threads, with the official ``langgraph-sdk`` and LangGraph's own
``RemoteGraph``: a thread's runs (list, get, delete), ``update_state``, ``next`` and ``tasks`` of a thread's state,
the store, and a served graph invoked, streamed and read as a ``RemoteGraph``; each scoped to the caller's tenant.

A real gateway, memory service and agent worker (checkpoints in the memory service) on real NATS serve graphs
from tests/agent/any_state_graphs.py: ``counter`` (count, then double) and ``asking`` (waits on ``interrupt()``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from nats.aio.client import Client as NatsClient
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_gateway import apikeys

from tests.agent.conftest import running_worker

KEYS = {tenant: apikeys.generate()[1] for tenant in ("acme", "globex")}


@pytest.fixture
async def url(
    serve: Callable[..., str], memory_target: str, nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> AsyncIterator[str]:
    graphs = tmp_path / "langgraph.json"
    specs = {"counter": "tests.agent.any_state_graphs:counter", "asking": "tests.agent.any_state_graphs:asker"}
    graphs.write_text(json.dumps({"graphs": specs}))
    static = ",".join(f"{tenant}:{apikeys.digest(key).hex()}" for tenant, key in KEYS.items())
    base = serve(MEMORY_TARGET=memory_target, GATEWAY_AUTH="required", GATEWAY_API_KEYS=static)
    saver = RemoteCheckpointSaver(target=memory_target)
    try:
        async with running_worker(
            nats_namespace,
            nc,
            tmp_path,
            ExtractiveAnswerer(),
            checkpointer=saver,
            THREADLINE_GRAPHS=str(graphs),
            MEMORY_TARGET=memory_target,
        ):
            yield f"{base}/langgraph"
    finally:
        await saver.close()


@pytest.fixture
async def acme(url: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=url, api_key=KEYS["acme"])
    yield client
    await client.aclose()


@pytest.fixture
async def globex(url: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=url, api_key=KEYS["globex"])
    yield client
    await client.aclose()


async def _status(call) -> int:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await call
    return refused.value.response.status_code


async def test_a_thread_s_runs_are_listed_got_and_deleted(acme: LangGraphClient, globex: LangGraphClient) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    first = await acme.runs.create(thread_id, "counter", input={"n": 1})
    await acme.runs.join(thread_id, first["run_id"])
    second = await acme.runs.create(thread_id, "counter", input={"n": 2})
    await acme.runs.join(thread_id, second["run_id"])

    listed = await acme.runs.list(thread_id)
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]  # newest first
    assert {r["status"] for r in listed} == {"success"} and {r["thread_id"] for r in listed} == {thread_id}
    assert [r["run_id"] for r in await acme.runs.list(thread_id, limit=1, offset=1)] == [first["run_id"]]
    assert len(await acme.runs.list(thread_id, status="success")) == 2
    assert await acme.runs.list(thread_id, status="error") == []
    assert (await acme.runs.get(thread_id, first["run_id"]))["status"] == "success"

    assert await _status(globex.runs.list(thread_id)) == 404
    assert await _status(globex.runs.delete(thread_id, first["run_id"])) == 404

    await acme.runs.delete(thread_id, first["run_id"])
    assert await _status(acme.runs.get(thread_id, first["run_id"])) == 404
    assert [r["run_id"] for r in await acme.runs.list(thread_id)] == [second["run_id"]]
    assert await _status(acme.runs.delete(thread_id, first["run_id"])) == 404

    await acme.runs.delete(thread_id, second["run_id"])  # the thread's latest: the thread is not left busy
    assert (await acme.threads.get(thread_id))["status"] == "idle"
    assert await acme.runs.wait(thread_id, "counter", input={"n": 0}) == {"n": 2, "log": ["nobody:-"] * 3}
    assert await acme.runs.list((await acme.threads.create())["thread_id"]) == []


async def test_update_state_applies_the_graph_s_reducers_in_a_worker(
    acme: LangGraphClient, globex: LangGraphClient
) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    assert await acme.runs.wait(thread_id, "counter", input={"n": 1}) == {"n": 4, "log": ["nobody:-"]}
    assert (await acme.threads.get(thread_id))["metadata"]["graph_id"] == "counter"  # the run recorded its graph

    updated = await acme.threads.update_state(thread_id, {"n": 10, "log": ["by hand"]}, as_node="double")
    checkpoint = updated["checkpoint"]
    assert checkpoint["thread_id"] == thread_id and checkpoint["checkpoint_ns"] == ""
    state = await acme.threads.get_state(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == checkpoint["checkpoint_id"]
    assert state["values"] == {"n": 10, "log": ["nobody:-", "by hand"]}  # log's reducer appended
    assert state["next"] == [] and state["metadata"]["source"] == "update"

    await acme.threads.update_state(thread_id, {"n": 5}, as_node="count")
    assert (await acme.threads.get_state(thread_id))["next"] == ["double"]

    assert await _status(acme.threads.update_state(thread_id, {"n": 1}, as_node="nowhere")) == 422
    assert await _status(globex.threads.update_state(thread_id, {"n": 1}, as_node="count")) == 404
    unrun = (await acme.threads.create())["thread_id"]
    assert await _status(acme.threads.update_state(unrun, {"n": 1})) == 409
    given = (await acme.threads.create(graph_id="counter"))["thread_id"]
    assert (await acme.threads.update_state(given, {"n": 7}, as_node="double"))["checkpoint"]["checkpoint_id"]
    assert (await acme.threads.get_state(given))["values"]["n"] == 7


async def test_next_and_tasks_come_from_the_checkpoint(acme: LangGraphClient) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    waiting = await acme.runs.wait(thread_id, "asking", input={"question": "colour?"})
    assert waiting["question"] == "colour?" and waiting["__interrupt__"]

    state = await acme.threads.get_state(thread_id)
    assert state["next"] == ["ask"]
    [task] = state["tasks"]
    assert task["name"] == "ask" and task["error"] is None
    assert [i["value"] for i in task["interrupts"]] == [{"asks": "colour?"}]
    assert task["interrupts"][0]["id"] == state["interrupts"][0]["id"]

    done = await acme.runs.wait(thread_id, "asking", command={"resume": "blue"})
    assert done == {"question": "colour?", "reply": "blue"}
    state = await acme.threads.get_state(thread_id)
    assert state["next"] == [] and state["tasks"] == []
    history = await acme.threads.get_history(thread_id, limit=10)
    assert history[-1]["next"] == ["__start__"]  # the input's checkpoint, as LangGraph's history has it


async def test_the_store_over_http_is_the_tenant_s(acme: LangGraphClient, globex: LangGraphClient) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    await acme.store.put_item(["users", user, "facts"], "colour", {"likes": "blue"})
    await acme.store.put_item(["users", user, "facts"], "food", {"likes": "rice"})
    await acme.store.put_item(["users", user, "prefs"], "tone", {"formal": True})

    item = await acme.store.get_item(["users", user, "facts"], "colour")
    assert item["value"] == {"likes": "blue"} and item["namespace"] == ["users", user, "facts"]
    assert item["key"] == "colour" and item["created_at"] and item["updated_at"]
    found = await acme.store.search_items(["users", user], filter={"likes": "rice"})
    assert [i["key"] for i in found["items"]] == ["food"]
    assert len((await acme.store.search_items(["users", user], limit=10))["items"]) == 3
    spaces = await acme.store.list_namespaces(prefix=["users", user])
    assert sorted(map(tuple, spaces["namespaces"])) == [("users", user, "facts"), ("users", user, "prefs")]
    assert (await acme.store.list_namespaces(prefix=["users", user], max_depth=2))["namespaces"] == [["users", user]]

    assert await globex.store.get_item(["users", user, "facts"], "colour") is None
    assert (await globex.store.search_items(["users", user]))["items"] == []
    assert (await globex.store.list_namespaces(prefix=["users", user]))["namespaces"] == []
    await globex.store.delete_item(["users", user, "facts"], "colour")  # names only globex's own item
    assert await acme.store.get_item(["users", user, "facts"], "colour") is not None

    await acme.store.delete_item(["users", user, "facts"], "colour")
    assert await acme.store.get_item(["users", user, "facts"], "colour") is None


async def test_bad_store_calls_get_a_clear_error(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEYS["acme"]}) as client:
        for namespace in ([], ["a.b"], [""]):
            put = {"namespace": namespace, "key": "k", "value": {}}
            assert (await client.put("/store/items", json=put)).status_code == 422
        assert (await client.get("/store/items", params={"namespace": "a..b", "key": "k"})).status_code == 422
        assert (await client.post("/store/items/search", json={"limit": 0})).status_code == 422


async def test_a_remote_graph_invokes_streams_and_reads_a_served_graph(url: str, acme: LangGraphClient) -> None:
    remote = RemoteGraph("counter", url=url, api_key=KEYS["acme"])
    assert await remote.ainvoke({"n": 1}) == {"n": 4, "log": ["nobody:-"]}  # without a thread: a stateless run

    thread_id = (await acme.threads.create())["thread_id"]
    config = {"configurable": {"thread_id": thread_id}}
    updates = [chunk async for chunk in remote.astream({"n": 2}, config, stream_mode="updates")]
    assert updates == [{"count": {"n": 3, "log": ["nobody:-"]}}, {"double": {"n": 6}}]
    values = [chunk async for chunk in remote.astream({"n": 1}, config, stream_mode="values")]
    assert values[-1] == {"n": 4, "log": ["nobody:-", "nobody:-"]}

    snapshot = await remote.aget_state(config)
    assert snapshot.values == {"n": 4, "log": ["nobody:-", "nobody:-"]} and snapshot.next == ()
    assert snapshot.config["configurable"]["checkpoint_id"]
    assert [s.values["n"] async for s in remote.aget_state_history(config, limit=2)] == [4, 2]
    updated = await remote.aupdate_state(config, {"n": 100}, as_node="double")
    after = await remote.aget_state(config)
    assert after.values["n"] == 100
    assert after.config["configurable"]["checkpoint_id"] == updated["configurable"]["checkpoint_id"]
    # The sync client too, off the event loop the worker runs on.
    assert await asyncio.to_thread(remote.invoke, {"n": 0}) == {"n": 2, "log": ["nobody:-"]}
