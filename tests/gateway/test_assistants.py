"""Assistants as data: ``client.assistants`` of the real ``langgraph-sdk``, ``/api/v1/assistants`` and runs
that name an assistant, against a real memory service (the built-in graphs registered in it as an agent
registers them) and real NATS, no agent: a run's request is read back from the RUNS stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from threadline.assistants import default_assistant_id
from threadline_gateway import apikeys

from tests.gateway.conftest import register_graphs
from tests.gateway.runs_stream import last_run_request

QUESTION = {"messages": [{"role": "user", "content": "How are runs kept durable?"}]}
# Tenants of their own: the memory service is the session's, shared with other tests.
TENANTS = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("acme", "globex")}
KEYS = {tenant: apikeys.generate()[1] for tenant in TENANTS.values()}


@pytest.fixture
def url(serve: Callable[..., str], memory_target: str) -> str:
    static = ",".join(f"{tenant}:{apikeys.digest(key).hex()}" for tenant, key in KEYS.items())
    return serve(MEMORY_TARGET=memory_target, GATEWAY_AUTH="required", GATEWAY_API_KEYS=static)


@pytest.fixture
async def acme(url: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=f"{url}/langgraph", api_key=KEYS[TENANTS["acme"]])
    yield client
    await client.aclose()


@pytest.fixture
async def globex(url: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=f"{url}/langgraph", api_key=KEYS[TENANTS["globex"]])
    yield client
    await client.aclose()


async def _status(call) -> int:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await call
    return refused.value.response.status_code


async def test_an_assistant_is_created_searched_versioned_and_deleted(
    acme: LangGraphClient, globex: LangGraphClient
) -> None:
    made = await acme.assistants.create(
        "research",
        config={"configurable": {"k": 2}, "tags": ["support"]},
        context={"tone": "brief"},
        metadata={"team": "red"},
        name="Support",
        description="Answers support questions",
    )
    assert (made["graph_id"], made["name"], made["version"]) == ("research", "Support", 1)
    assert made["config"] == {"configurable": {"k": 2}, "tags": ["support"]} and made["context"] == {"tone": "brief"}
    assert made["description"] == "Answers support questions"
    assistant_id = made["assistant_id"]
    assert (await acme.assistants.get(assistant_id))["name"] == "Support"

    found = await acme.assistants.search(metadata={"team": "red"})
    assert [a["assistant_id"] for a in found] == [assistant_id]
    assert await acme.assistants.count(metadata={"team": "red"}) == 1
    assert await acme.assistants.count(graph_id="research") == 2  # its own and the graph's default one
    page = await acme.assistants.search(limit=1, response_format="object")
    assert len(page["assistants"]) == 1 and page["next"] == "1"

    second = await acme.assistants.update(assistant_id, context={"tone": "formal"}, metadata={"stage": "beta"})
    assert second["version"] == 2
    assert second["metadata"] == {"team": "red", "stage": "beta"} and second["context"] == {"tone": "formal"}
    assert second["config"] == made["config"]
    versions = await acme.assistants.get_versions(assistant_id)
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["version"] for v in await acme.assistants.get_versions(assistant_id, metadata={"stage": "beta"})] == [2]
    first = await acme.assistants.set_latest(assistant_id, 1)
    assert (first["version"], first["context"]) == (1, {"tone": "brief"})
    assert (await acme.assistants.get(assistant_id))["version"] == 1
    assert await _status(acme.assistants.set_latest(assistant_id, 7)) == 404

    # Another tenant's assistant is not found, whatever it does with it.
    for call in (
        globex.assistants.get(assistant_id),
        globex.assistants.update(assistant_id, name="mine"),
        globex.assistants.delete(assistant_id),
        globex.assistants.get_versions(assistant_id),
        globex.assistants.set_latest(assistant_id, 1),
    ):
        assert await _status(call) == 404
    assert assistant_id not in {a["assistant_id"] for a in await globex.assistants.search(limit=100)}

    await acme.assistants.delete(assistant_id)
    assert await _status(acme.assistants.get(assistant_id)) == 404
    assert await acme.assistants.count(metadata={"team": "red"}) == 0


async def test_the_graphs_default_assistants_are_everyones_and_read_only(
    acme: LangGraphClient, globex: LangGraphClient
) -> None:
    for client in (acme, globex):
        by_name = await client.assistants.get("agent")
        assert by_name["assistant_id"] == default_assistant_id("agent")
        assert (by_name["graph_id"], by_name["metadata"]) == ("agent", {"created_by": "system"})
        assert (await client.assistants.get(by_name["assistant_id"]))["graph_id"] == "agent"
    defaults = await acme.assistants.search(metadata={"created_by": "system"}, limit=100)
    assert {"agent", "research"} <= {a["graph_id"] for a in defaults}
    assert await _status(acme.assistants.update("agent", name="mine")) == 409
    assert await _status(acme.assistants.delete(default_assistant_id("agent"))) == 409
    assert await _status(acme.assistants.create("no-such-graph")) == 404
    assert await _status(acme.assistants.get("no-such-assistant")) == 404


async def test_a_graphs_schemas_and_drawing_are_what_its_agent_registered(
    acme: LangGraphClient, memory_target: str
) -> None:
    builder = StateGraph(MessagesState)
    builder.add_node("reply", lambda state: {})
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    graph_id = f"echo-{uuid.uuid4().hex[:6]}"
    await register_graphs(memory_target, {graph_id: builder.compile()})

    mine = await acme.assistants.create(graph_id, name="Echo")
    schemas = await acme.assistants.get_schemas(mine["assistant_id"])
    assert schemas["graph_id"] == graph_id
    assert "messages" in schemas["input_schema"]["properties"]
    assert "messages" in schemas["state_schema"]["properties"]
    assert schemas["context_schema"] is None
    drawn = await acme.assistants.get_graph(graph_id)
    assert {n["id"] for n in drawn["nodes"]} == {"__start__", "reply", "__end__"}
    assert {"source": "__start__", "target": "reply"} in [
        {k: e[k] for k in ("source", "target")} for e in drawn["edges"]
    ]
    # A graph built per run (registered without a structure): its drawing is not available, and says so.
    assert await _status(acme.assistants.get_graph("agent")) == 501


async def test_a_run_of_an_assistant_gets_its_graph_config_and_context_and_records_it(
    acme: LangGraphClient, nats_namespace: str
) -> None:
    made = await acme.assistants.create(
        "research", config={"configurable": {"k": 2, "lang": "en"}, "tags": ["a"]}, context={"tone": "brief"}
    )
    thread_id = (await acme.threads.create())["thread_id"]
    run = await acme.runs.create(
        thread_id,
        made["assistant_id"],
        input=QUESTION,
        config={"configurable": {"lang": "fr"}},
        context={"user": "ada"},
    )
    assert run["assistant_id"] == made["assistant_id"]
    assert (run["metadata"]["assistant_id"], run["metadata"]["assistant_version"]) == (made["assistant_id"], 1)

    sent = await last_run_request(nats_namespace)
    assert (sent.run_id, sent.assistant_id, sent.graph_id) == (run["run_id"], made["assistant_id"], "research")
    assert sent.config.configurable == {"k": 2, "lang": "fr"}  # the run's own keys win
    assert sent.config.tags == ["a"]
    assert sent.context == {"tone": "brief", "user": "ada"}
    assert sent.metadata["assistant_version"] == 1

    # A graph's name runs its default assistant.
    by_name = await acme.runs.create(None, "agent", input=QUESTION)
    assert by_name["metadata"]["assistant_id"] == default_assistant_id("agent")
    sent = await last_run_request(nats_namespace)
    assert (sent.assistant_id, sent.graph_id) == ("agent", "agent")

    await acme.assistants.delete(made["assistant_id"])
    assert await _status(acme.runs.create(thread_id, made["assistant_id"], input=QUESTION)) == 404


def test_the_v1_api_creates_lists_changes_and_deletes_assistants(
    make_gateway: Callable[..., TestClient], memory_target: str
) -> None:
    gateway = make_gateway(MEMORY_TARGET=memory_target, GATEWAY_DEFAULT_TENANT=f"v1-{uuid.uuid4().hex[:8]}")
    made = gateway.post(
        "/api/v1/assistants",
        json={"graph_id": "agent", "name": "Helpdesk", "config": {"configurable": {"k": 3}}, "metadata": {"team": "a"}},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["version"], body["default"], body["config"]) == (1, False, {"configurable": {"k": 3}})
    assistant_id = body["assistant_id"]

    listed = gateway.get("/api/v1/assistants", params={"limit": 100}).json()
    by_id = {a["assistant_id"]: a for a in listed["assistants"]}
    assert by_id[assistant_id]["name"] == "Helpdesk" and listed["next_offset"] is None
    assert by_id[default_assistant_id("agent")]["default"] is True
    first = gateway.get("/api/v1/assistants", params={"limit": 1}).json()
    assert [a["assistant_id"] for a in first["assistants"]] == [assistant_id] and first["next_offset"] == 1
    only = gateway.get("/api/v1/assistants", params={"graph_id": "research"}).json()["assistants"]
    assert [a["graph_id"] for a in only] == ["research"]

    patched = gateway.patch(f"/api/v1/assistants/{assistant_id}", json={"name": "Help desk", "metadata": {"b": 1}})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["version"], patched.json()["metadata"]) == (2, {"team": "a", "b": 1})
    assert gateway.get(f"/api/v1/assistants/{assistant_id}").json()["name"] == "Help desk"
    assert gateway.get("/api/v1/assistants/agent").json()["assistant_id"] == default_assistant_id("agent")

    read_only = gateway.patch("/api/v1/assistants/agent", json={"name": "x"})
    assert (read_only.status_code, read_only.json()["error"]["code"]) == (409, "read_only")
    unknown_graph = gateway.post("/api/v1/assistants", json={"graph_id": "nope"})
    assert unknown_graph.status_code == 404
    bad_config = gateway.post("/api/v1/assistants", json={"graph_id": "agent", "config": {"recursion_limit": 0}})
    assert bad_config.status_code == 422

    # A run names it: its version is recorded with the run.
    run = gateway.post("/api/v1/runs", json={"input": "How are runs kept durable?", "assistant_id": assistant_id})
    assert run.status_code == 202, run.text
    missing = gateway.post("/api/v1/runs", json={"input": "hi", "assistant_id": str(uuid.uuid4())})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "assistant_not_found")

    assert gateway.delete(f"/api/v1/assistants/{assistant_id}").status_code == 204
    assert gateway.get(f"/api/v1/assistants/{assistant_id}").status_code == 404
    assert gateway.delete(f"/api/v1/assistants/{assistant_id}").status_code == 404
