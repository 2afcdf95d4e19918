"""The LangGraph Platform API with the real ``langgraph-sdk``, on real NATS and a real memory service, no agent.

With no agent behind the gateway, a run stays pending: its thread stays busy, which is what
``multitask_strategy`` and cancellation act on. Streams and answers are tests/e2e/test_langgraph_sdk.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_gateway import apikeys

from tests.gateway.runs_stream import last_run_request

QUESTION = {"messages": [{"role": "user", "content": "How are runs kept durable?"}]}
KEYS = {tenant: apikeys.generate()[1] for tenant in ("acme", "globex")}


@pytest.fixture
def url(serve: Callable[..., str], memory_target: str) -> str:
    static = ",".join(f"{tenant}:{apikeys.digest(key).hex()}" for tenant, key in KEYS.items())
    return serve(MEMORY_TARGET=memory_target, GATEWAY_AUTH="required", GATEWAY_API_KEYS=static) + "/langgraph"


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


async def test_a_busy_thread_rejects_a_second_run_unless_told_otherwise(acme: LangGraphClient) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    first = await acme.runs.create(thread_id, "agent", input=QUESTION)
    assert first["status"] == "pending" and first["multitask_strategy"] == "reject"
    assert (await acme.threads.get(thread_id))["status"] == "busy"

    assert await _status(acme.runs.create(thread_id, "agent", input=QUESTION)) == 409
    queued = await acme.runs.create(thread_id, "agent", input=QUESTION, multitask_strategy="enqueue")
    assert queued["multitask_strategy"] == "enqueue" and queued["status"] == "pending"
    interrupting = await acme.runs.create(thread_id, "agent", input=QUESTION, multitask_strategy="interrupt")
    assert interrupting["run_id"] not in (first["run_id"], queued["run_id"])


async def test_a_pending_run_is_cancelled(acme: LangGraphClient) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    run = await acme.runs.create(thread_id, "agent", input=QUESTION)
    assert await acme.runs.cancel(thread_id, run["run_id"]) is None
    assert await _status(acme.runs.cancel(thread_id, run["run_id"], action="rollback")) == 422


async def test_a_run_is_deleted_only_once_it_has_ended(acme: LangGraphClient) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    run = await acme.runs.create(thread_id, "agent", input=QUESTION)  # no agent here: it stays pending
    assert [r["run_id"] for r in await acme.runs.list(thread_id, status="pending")] == [run["run_id"]]
    assert await _status(acme.runs.delete(thread_id, run["run_id"])) == 409
    assert (await acme.runs.get(thread_id, run["run_id"]))["status"] == "pending"


async def test_threads_are_updated_copied_and_deleted(acme: LangGraphClient) -> None:
    thread = await acme.threads.create(metadata={"user": "ada"})
    updated = await acme.threads.update(thread["thread_id"], metadata={"topic": "runs"})
    assert updated["metadata"] == {"user": "ada", "topic": "runs"}
    copy = await acme.threads.copy(thread["thread_id"])
    assert copy["thread_id"] != thread["thread_id"]
    await acme.threads.delete(thread["thread_id"])
    assert await _status(acme.threads.get(thread["thread_id"])) == 404


async def test_another_tenant_s_threads_and_runs_are_not_found(acme: LangGraphClient, globex: LangGraphClient) -> None:
    thread_id = (await acme.threads.create(metadata={"owner": "acme"}))["thread_id"]
    run = await acme.runs.create(thread_id, "agent", input=QUESTION)

    for call in (
        globex.threads.get(thread_id),
        globex.threads.get_state(thread_id),
        globex.threads.get_history(thread_id),
        globex.threads.update(thread_id, metadata={"owner": "globex"}),
        globex.threads.copy(thread_id),
        globex.threads.delete(thread_id),
        globex.runs.get(thread_id, run["run_id"]),
        globex.runs.join(thread_id, run["run_id"]),
        globex.runs.cancel(thread_id, run["run_id"]),
        globex.runs.create(thread_id, "agent", input=QUESTION),
    ):
        assert await _status(call) == 404
    assert await globex.threads.search(metadata={"owner": "acme"}) == []
    metadata = (await acme.threads.get(thread_id))["metadata"]
    assert metadata["owner"] == "acme" and metadata["graph_id"] == "agent"  # its first run recorded its graph


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input": {"messages": []}}, 422),
        ({"input": {"messages": [{"role": "assistant", "content": "hi"}]}}, 422),
        ({"input": QUESTION, "stream_mode": "checkpoints"}, 422),
        ({"input": QUESTION, "command": {"resume": {"action": "maybe"}}}, 422),
        ({"command": {"goto": 3}}, 422),
        ({"command": {"jump": "agent"}}, 422),
        ({"command": {"resume": {"action": "edit"}}}, 422),
        ({"input": QUESTION, "config": {"recursion_limit": 0}}, 422),
        ({"input": QUESTION, "assistant_id": "nope"}, 404),
        ({"input": QUESTION, "multitask_strategy": "sometimes"}, 422),
    ],
)
async def test_bad_runs_get_a_clear_error(url: str, body: dict, status: int) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEYS["acme"]}) as client:
        thread_id = (await client.post("/threads", json={})).json()["thread_id"]
        reply = await client.post(f"/threads/{thread_id}/runs", json={"assistant_id": "agent", **body})
    assert reply.status_code == status, reply.text
    assert "error" in reply.json()


async def test_a_run_without_input_needs_a_thread_to_go_on_from(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEYS["acme"]}) as client:
        reply = await client.post("/runs/wait", json={"assistant_id": "agent"})
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["details"]["fields"][0]["field"] == "input"


async def test_a_command_resumes_the_thread_with_the_decision(acme: LangGraphClient, nats_namespace: str) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    run = await acme.runs.create(thread_id, "agent", command={"resume": {"action": "reject", "reason": "not now"}})

    sent = await last_run_request(nats_namespace)
    assert (sent.run_id, sent.thread_id, sent.input) == (run["run_id"], thread_id, "")
    assert sent.resume == {"action": "reject", "reason": "not now"}


async def test_a_graph_s_input_config_context_command_and_modes_reach_the_run(
    acme: LangGraphClient, nats_namespace: str
) -> None:
    thread_id = (await acme.threads.create())["thread_id"]
    await acme.runs.create(
        thread_id,
        "agent",
        input={"topic": "durability"},
        config={"configurable": {"unit": "kg", "thread_id": "not-this", "user_id": "eve"}, "recursion_limit": 30},
        context={"user": "ada"},
        stream_mode=["custom", "events", "debug"],
    )
    sent = await last_run_request(nats_namespace)
    assert sent.input == {"topic": "durability"} and sent.context == {"user": "ada"}
    assert sent.config.configurable.get("unit") == "kg" and sent.config.recursion_limit == 30
    assert not {"thread_id", "user_id"} & set(sent.config.configurable)  # the platform's keys
    assert sent.stream_modes == ["custom", "debug", "events"]

    command = {"update": {"topic": "cancelling"}, "goto": "agent"}
    await acme.runs.create(thread_id, "agent", command=command, multitask_strategy="enqueue")
    sent = await last_run_request(nats_namespace)
    assert sent.command == command and sent.resume is None and sent.input == ""
    await acme.runs.create(thread_id, "agent", command={"resume": "blue"}, multitask_strategy="enqueue")
    assert (await last_run_request(nats_namespace)).command == {"resume": "blue"}


async def test_a_paused_thread_shows_what_it_waits_on(acme: LangGraphClient, memory_target: str) -> None:
    thread_id = (await acme.threads.create())["thread_id"]

    def ask(state: MessagesState) -> dict:
        interrupt({"name": "calculator", "args": {"expression": "6*7"}})
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    try:
        await builder.compile(checkpointer=saver).ainvoke({"messages": []}, {"configurable": {"thread_id": thread_id}})
    finally:
        await saver.close()

    state = await acme.threads.get_state(thread_id)
    assert [i["value"] for i in state["interrupts"]] == [{"name": "calculator", "args": {"expression": "6*7"}}]
    assert state["interrupts"][0]["id"]
