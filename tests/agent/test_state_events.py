"""LangGraph's own stream modes on request: the graph's values after each step and each node's update."""

from __future__ import annotations

import uuid

from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline_agent.worker.agent_worker import AgentWorker

from tests.agent.test_worker import run_and_collect


async def test_values_and_updates_are_published_when_a_run_asks(worker: AgentWorker, nc: NatsClient) -> None:
    run = RunRequested(
        run_id=uuid.uuid4().hex,
        thread_id="t-modes",
        tenant_id="acme",
        input="How are runs kept?",
        state_events=["values", "updates"],
    )
    events = [e for e, _ in await run_and_collect(nc, worker.topology, run)]

    values = [e.data for e in events if e.kind == "values"]
    updates = [e.data for e in events if e.kind == "updates"]
    # The input, then after agent (tool call), tools (result) and agent (answer): as graph.astream gives them.
    assert [[m["type"] for m in v["messages"]] for v in values] == [
        ["human"],
        ["human", "ai"],
        ["human", "ai", "tool"],
        ["human", "ai", "tool", "ai"],
    ]
    assert values[0]["messages"][0]["content"] == run.input
    assert [list(u) for u in updates] == [["agent"], ["tools"], ["agent"]]
    assert updates[0]["agent"]["messages"][0]["tool_calls"][0]["name"] == "search_knowledge_base"
    answer = values[-1]["messages"][-1]
    tokens = [e.data for e in events if e.kind == "token"]
    assert {t["message_id"] for t in tokens} == {answer["id"]} and {t["node"] for t in tokens} == {"agent"}
    assert "".join(t["text"] for t in tokens) == answer["content"]


async def test_without_asking_a_run_publishes_neither(worker: AgentWorker, nc: NatsClient) -> None:
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id="t-plain", tenant_id="acme", input="How are runs kept?")
    kinds = {e.kind for e, _ in await run_and_collect(nc, worker.topology, run)}
    assert kinds.isdisjoint({"values", "updates"})
