"""Any graph through the LangGraph Platform API: input, config, context and command reach the graph, and every
stream mode comes back framed as LangGraph Platform frames it, read with the official ``langgraph-sdk``.

A real agent worker serves a dataclass-state graph (tests/agent/any_state_graphs.py, named in a
langgraph.json handed to the worker) and the built-in ``agent``, behind a gateway on a real server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from nats.aio.client import Client as NatsClient
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from websockets.asyncio.client import connect

from tests.agent.conftest import running_worker
from tests.conftest import free_port

QUESTION = {"messages": [{"role": "user", "content": "How are runs kept durable?"}]}


@pytest.fixture
async def url(serve: Callable[..., str], nats_namespace: str, nc: NatsClient, tmp_path: Path) -> AsyncIterator[str]:
    graphs = tmp_path / "langgraph.json"
    specs = {"counter": "tests.agent.any_state_graphs:counter", "agent": "threadline_agent.graphs.assistants:agent"}
    graphs.write_text(json.dumps({"graphs": specs}))
    # No memory service: stateless runs need none, and each graph's name is its default assistant.
    base = serve(MEMORY_TARGET=f"127.0.0.1:{free_port()}")
    async with running_worker(nats_namespace, nc, tmp_path, ExtractiveAnswerer(), THREADLINE_GRAPHS=str(graphs)):
        yield base


@pytest.fixture
async def lg(url: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=f"{url}/langgraph")
    yield client
    await client.aclose()


async def test_a_dataclass_graph_streams_every_mode_with_its_input_config_and_context(lg: LangGraphClient) -> None:
    parts = [
        part
        async for part in lg.runs.stream(
            None,
            "counter",
            input={"n": 2},
            context={"user": "ada"},
            config={"configurable": {"unit": "kg", "tenant_id": "someone-else"}},
            stream_mode=["values", "updates", "custom", "debug", "events"],
        )
    ]
    assert parts[0].event == "metadata"
    by_event: dict[str, list] = {}
    for part in parts[1:]:
        by_event.setdefault(part.event, []).append(part.data)
    assert by_event["values"] == [{"n": 2, "log": []}, {"n": 3, "log": ["ada:kg"]}, {"n": 6, "log": ["ada:kg"]}]
    assert by_event["updates"] == [{"count": {"n": 3, "log": ["ada:kg"]}}, {"double": {"n": 6}}]
    assert by_event["custom"] == [{"counting": 2}]
    assert {d["type"] for d in by_event["debug"]} >= {"checkpoint", "task", "task_result"}
    assert {e["event"] for e in by_event["events"]} >= {"on_chain_start", "on_chain_end"}
    assert "error" not in by_event


async def test_wait_answers_with_the_graph_s_final_values(lg: LangGraphClient) -> None:
    values = await lg.runs.wait(None, "counter", input={"n": 1}, context={"user": "bo"})
    assert values == {"n": 4, "log": ["bo:-"]}


async def test_messages_modes_are_framed_as_langgraph_platform_frames_them(lg: LangGraphClient) -> None:
    parts = [p async for p in lg.runs.stream(None, "agent", input=QUESTION, stream_mode=["messages", "values"])]
    answer = next(p.data for p in reversed(parts) if p.event == "values")["messages"][-1]
    assert answer["type"] == "ai"
    of_answer = [p for p in parts if p.event.startswith("messages/") and answer["id"] in json.dumps(p.data)]
    assert of_answer[0].event == "messages/metadata"
    assert of_answer[0].data[answer["id"]]["metadata"]["langgraph_node"] == "agent"
    partial = [p.data[0] for p in of_answer if p.event == "messages/partial"]
    assert partial and partial[-1]["content"] == answer["content"] and partial[-1]["type"] == "ai"
    assert all(len(a["content"]) <= len(b["content"]) for a, b in pairwise(partial))
    tool = [p.data[0] for p in parts if p.event == "messages/complete"]
    assert tool and tool[0]["type"] == "tool"

    tuples = [
        p.data
        async for p in lg.runs.stream(None, "agent", input=QUESTION, stream_mode="messages-tuple")
        if p.event == "messages"
    ]
    chunks = [(chunk, meta) for chunk, meta in tuples if chunk["type"] == "AIMessageChunk" and chunk["content"]]
    assert chunks and {meta["langgraph_node"] for _, meta in chunks} == {"agent"}


async def test_a_question_for_a_graph_without_messages_is_a_clear_422(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        asked = await client.post("/api/v1/query", json={"input": "How many?", "assistant_id": "counter"})
        assert asked.status_code == 422 and asked.json()["error"]["code"] == "graph_takes_no_messages"

        chat = {"model": "counter", "messages": [{"role": "user", "content": "How many?"}]}
        chatted = await client.post("/v1/chat/completions", json=chat)
        assert chatted.status_code == 422 and chatted.json()["error"]["code"] == "graph_takes_no_messages"

        given = {"input": {"n": 3}, "assistant_id": "counter", "context": {"user": "cy"}, "config": {"tags": ["t"]}}
        run = (await client.post("/api/v1/runs", json=given)).json()
        done = await client.get(f"/api/v1/runs/{run['run_id']}/wait")
        assert done.status_code == 200 and done.json()["output"] == {"n": 8, "log": ["cy:-"]}
        assert done.json()["answer"] == ""

        # A conversation's input is a question too: this graph takes none.
        question = {"assistant_id": "counter", "input": {"messages": [{"role": "user", "content": "hi"}]}}
        refused = (await client.post("/langgraph/runs/wait", json=question)).json()
        assert refused["__error__"]["error"] == "graph_takes_no_messages"


async def test_a_websocket_query_takes_the_graph_s_input_context_and_config(url: str) -> None:
    query = {
        "type": "query",
        "ref": "q1",
        "assistant_id": "counter",
        "input": {"n": 0},
        "context": {"user": "di"},
        "config": {"configurable": {"unit": "m"}},
    }
    async with connect(url.replace("http", "ws", 1) + "/api/v1/ws") as ws:
        await ws.send(json.dumps(query))
        assert json.loads(await ws.recv())["type"] == "accepted"
        while (message := json.loads(await ws.recv()))["kind"] not in ("end", "error"):
            pass
    assert message["kind"] == "end" and message["data"]["output"] == {"n": 2, "log": ["di:m"]}
