"""``THREADLINE_GRAPHS=examples/langgraph.json ./task up``: the example project served by the whole mesh.

One ``./task up`` (started once for the module, stopped with Ctrl-C at its end) is driven with
LangGraph's own clients, ``langgraph-sdk`` and ``RemoteGraph``, as a LangGraph Platform user drives
a deployment of the same project: ``tally`` (a dataclass state and a ``context_schema``) for the
state's stream modes, threads and assistants, ``kb_chat`` (a message graph) for the message modes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode, StreamPart

from tests.conftest import free_port
from tests.e2e.mesh import ROOT, MeshProcess, wait_gone

TEXT = "to be or not to be"
TALLIED = {"text": TEXT, "count": 6, "report": "ada: 6 words"}
QUESTION = {"messages": [{"role": "user", "content": "How are runs kept durable?"}]}


@dataclass(frozen=True)
class Up:
    """The running ``./task up``: its gateway and its launcher."""

    url: str
    process: MeshProcess


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """``./task up`` as a user starts it (embedded NATS and stores, nothing of the machine's), once for the
    module; Ctrl-C at its end must stop it cleanly: exit code 0 and no process left behind."""
    gateway_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"NATS_URL", "DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENT_GRAPHS"}
        and not key.startswith("OTEL_")
    }
    env.update(
        THREADLINE_GRAPHS="examples/langgraph.json",
        GATEWAY_PORT=str(gateway_port),
        THREADLINE_NATS_PORT=str(free_port()),
        RETRIEVAL_PORT=str(free_port()),
        MEMORY_PORT=str(free_port()),
        THREADLINE_DATA_DIR=str(tmp_path_factory.mktemp("up") / "data"),
    )
    process = MeshProcess([str(ROOT / "task"), "up"], env)
    process.wait_ready(timeout=300)
    started = process.descendants()
    try:
        yield Up(url=f"http://127.0.0.1:{gateway_port}", process=process)
    finally:
        code = process.interrupt()
    assert code == 0, "\n".join(process.lines[-20:])
    assert not wait_gone(started), "processes left running after Ctrl-C"


@pytest.fixture
async def lg(up: Up) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=f"{up.url}/langgraph")
    yield client
    await client.aclose()


async def _stream(
    lg: LangGraphClient, graph: str, mode: StreamMode, given: dict[str, Any], **kwargs: Any
) -> tuple[str, list[StreamPart]]:
    """A run of ``graph`` on a new thread streamed in one ``mode``: the thread and the parts after ``metadata``."""
    thread_id = (await lg.threads.create())["thread_id"]
    parts = [p async for p in lg.runs.stream(thread_id, graph, input=given, stream_mode=mode, **kwargs)]
    assert parts[0].event == "metadata" and parts[0].data["run_id"], parts[:1]
    return thread_id, parts[1:]


async def _wait(lg: LangGraphClient, thread_id: str | None, assistant_id: str, **kwargs: Any) -> dict[str, Any]:
    """``runs.wait``'s answer: a graph without messages answers with its final values."""
    values = await lg.runs.wait(thread_id, assistant_id, **kwargs)
    assert isinstance(values, dict), values
    return values


def _events(parts: list[StreamPart]) -> set[str]:
    return {p.event for p in parts}


def test_task_up_serves_the_example_graphs(up: Up) -> None:
    assert f"graphs from {ROOT / 'examples' / 'langgraph.json'}" in "\n".join(up.process.lines)
    tally = httpx.post(
        f"{up.url}/langgraph/runs/wait",
        json={"assistant_id": "tally", "input": {"text": TEXT}, "context": {"user": "ada"}},
        timeout=60,
    )
    assert tally.status_code == 200, tally.text
    assert tally.json() == TALLIED
    chat = httpx.post(
        f"{up.url}/api/v1/query", json={"input": "How are runs kept durable?", "assistant_id": "kb_chat"}, timeout=60
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["citations"]


async def test_each_graph_of_the_project_has_its_default_assistant(lg: LangGraphClient) -> None:
    found = await lg.assistants.search(metadata={"created_by": "system"})
    assert sorted(a["graph_id"] for a in found) == ["kb_chat", "tally"]
    tally = await lg.assistants.get("tally")
    assert tally["graph_id"] == "tally" and tally["assistant_id"] in {a["assistant_id"] for a in found}
    schemas = await lg.assistants.get_schemas("tally")
    context, state = schemas["context_schema"], schemas["state_schema"]
    assert context is not None and set(context["properties"]) == {"user", "unit"}  # the graph's Who
    assert state is not None and set(state["properties"]) == {"text", "count", "report"}


async def test_a_thread_s_run_its_state_and_history(lg: LangGraphClient) -> None:
    thread_id = (await lg.threads.create())["thread_id"]
    assert await _wait(lg, thread_id, "tally", input={"text": TEXT}, context={"user": "ada"}) == TALLIED

    state = await lg.threads.get_state(thread_id)
    assert state["values"] == TALLIED and state["next"] == [] and state["tasks"] == []
    assert state["checkpoint"]["thread_id"] == thread_id and state["checkpoint"]["checkpoint_id"]
    history = await lg.threads.get_history(thread_id)
    # Newest first: the end, after report, after count, the input.
    assert history[0]["checkpoint"] == state["checkpoint"]
    assert [h["next"] for h in history] == [[], ["report"], ["count"], ["__start__"]]
    assert [h["values"] for h in history] == [TALLIED, {"text": TEXT, "count": 6}, {"text": TEXT}, {}]
    assert [h["parent_checkpoint"] for h in history[:-1]] == [h["checkpoint"] for h in history[1:]]


async def test_a_state_update_as_a_node_is_the_thread_s_state(lg: LangGraphClient) -> None:
    thread_id = (await lg.threads.create())["thread_id"]
    await lg.runs.wait(thread_id, "tally", input={"text": TEXT}, context={"user": "ada"})

    updated = await lg.threads.update_state(thread_id, {"count": 10}, as_node="count")
    state = await lg.threads.get_state(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == updated["checkpoint"]["checkpoint_id"]
    assert state["values"] == {**TALLIED, "count": 10}
    assert state["next"] == ["report"]  # as if count had just run: report comes next
    assert state["metadata"] is not None and state["metadata"]["source"] == "update"

    # no input: the run goes on from the updated checkpoint, as LangGraph Platform's does
    resumed = await lg.runs.wait(thread_id, "tally", input=None, context={"user": "ada"})
    assert resumed == {**TALLIED, "count": 10, "report": "ada: 10 words"}


async def test_the_state_stream_modes(lg: LangGraphClient) -> None:
    context = {"user": "ada"}
    _, values = await _stream(lg, "tally", "values", {"text": TEXT}, context=context)
    assert _events(values) == {"values"}
    assert [p.data for p in values] == [{"text": TEXT}, {"text": TEXT, "count": 6}, TALLIED]

    _, updates = await _stream(lg, "tally", "updates", {"text": TEXT}, context=context)
    assert _events(updates) == {"updates"}
    assert [p.data for p in updates] == [{"count": {"count": 6}}, {"report": {"report": "ada: 6 words"}}]

    _, custom = await _stream(lg, "tally", "custom", {"text": TEXT}, context=context)
    assert [(p.event, p.data) for p in custom] == [("custom", {"counted": 6})]  # what count wrote


async def test_the_debug_stream_mode(lg: LangGraphClient) -> None:
    thread_id, parts = await _stream(lg, "tally", "debug", {"text": TEXT}, context={"user": "ada"})
    assert _events(parts) == {"debug"}
    debug = [p.data for p in parts]
    assert [(d["type"], d["step"]) for d in debug] == [
        ("checkpoint", -1),
        ("checkpoint", 0),
        ("task", 1),
        ("task_result", 1),
        ("checkpoint", 1),
        ("task", 2),
        ("task_result", 2),
        ("checkpoint", 2),
    ]
    results = {d["payload"]["name"]: d["payload"]["result"] for d in debug if d["type"] == "task_result"}
    assert results == {"count": {"count": 6}, "report": {"report": "ada: 6 words"}}
    # As LangGraph Platform adds them: each checkpoint's and its parent's references, a chain.
    checkpoints = [d["payload"] for d in debug if d["type"] == "checkpoint"]
    assert checkpoints[0]["parent_checkpoint"] is None
    assert [c["parent_checkpoint"] for c in checkpoints[1:]] == [c["checkpoint"] for c in checkpoints[:-1]]
    assert checkpoints[-1]["values"] == TALLIED
    state = await lg.threads.get_state(thread_id)
    assert checkpoints[-1]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]


async def test_the_events_stream_mode(lg: LangGraphClient) -> None:
    _, parts = await _stream(lg, "tally", "events", {"text": TEXT}, context={"user": "ada"})
    assert _events(parts) == {"events"}
    events = [p.data for p in parts]
    assert all({"event", "name", "run_id", "data"} <= set(e) for e in events), events
    # The graph's run opens and closes the stream; each node is a chain run inside it.
    assert (events[0]["event"], events[0]["data"]["input"]) == ("on_chain_start", {"text": TEXT})
    assert (events[-1]["event"], events[-1]["data"]["output"]) == ("on_chain_end", TALLIED)
    assert events[0]["run_id"] == events[-1]["run_id"]
    ended = {
        e["name"]: e["data"]["output"] for e in events if e["event"] == "on_chain_end" and e["name"] != "LangGraph"
    }
    assert ended == {"count": {"count": 6}, "report": {"report": "ada: 6 words"}}


async def _answer(lg: LangGraphClient, thread_id: str) -> dict[str, Any]:
    """The thread's last message once its run has ended: kb_chat's answer."""
    values = (await lg.threads.get_state(thread_id))["values"]
    assert isinstance(values, dict)
    answer = values["messages"][-1]
    assert answer["type"] == "ai" and "[1]" in answer["content"], answer
    return answer


async def test_the_messages_tuple_stream_mode(lg: LangGraphClient) -> None:
    thread_id, parts = await _stream(lg, "kb_chat", "messages-tuple", QUESTION)
    assert _events(parts) == {"messages"}
    assert all(len(p.data) == 2 for p in parts)  # [message or chunk, metadata]
    by_node: dict[str, list[dict[str, Any]]] = {}
    for message, metadata in (p.data for p in parts):
        by_node.setdefault(metadata["langgraph_node"], []).append(message)
    looked_up, answered = by_node.pop("look_up"), by_node.pop("answer")
    assert not by_node
    # look_up's messages whole (its search call and the tool's passages), the model's answer in chunks.
    assert [m["type"] for m in looked_up] == ["ai", "tool"]
    assert [c["name"] for c in looked_up[0]["tool_calls"]] == ["search_knowledge_base"]
    assert looked_up[1]["tool_call_id"] == looked_up[0]["tool_calls"][0]["id"]
    assert len(answered) > 1 and {c["type"] for c in answered} == {"AIMessageChunk"}
    answer = await _answer(lg, thread_id)
    assert {c["id"] for c in answered} == {answer["id"]}
    assert "".join(c["content"] for c in answered) == answer["content"]


async def test_the_messages_stream_mode(lg: LangGraphClient) -> None:
    thread_id, parts = await _stream(lg, "kb_chat", "messages", QUESTION)
    assert _events(parts) == {"messages/metadata", "messages/complete", "messages/partial"}
    # Each message: its metadata once, first; then itself whole, or (streamed) as it grows.
    seen: dict[str, list[StreamPart]] = {}
    for part in parts:
        if part.event == "messages/metadata":
            [(message_id, meta)] = part.data.items()
            assert message_id not in seen and meta["metadata"]["langgraph_node"] in {"look_up", "answer"}
            seen[message_id] = []
        else:
            [message] = part.data
            seen[message["id"]].append(part)
    answer = await _answer(lg, thread_id)
    streamed = seen.pop(answer["id"])
    assert {p.event for p in streamed} == {"messages/partial"}
    so_far = [p.data[0]["content"] for p in streamed]
    assert all(later.startswith(earlier) for earlier, later in pairwise(so_far))
    assert so_far[-1] == answer["content"] and streamed[-1].data[0]["type"] == "ai"
    # look_up's two messages come whole, once each.
    assert [[(p.event, p.data[0]["type"]) for p in ps] for ps in seen.values()] == [
        [("messages/complete", "ai")],
        [("messages/complete", "tool")],
    ]


async def test_an_assistant_with_its_own_context(lg: LangGraphClient) -> None:
    grace = await lg.assistants.create("tally", context={"user": "grace", "unit": "letters"}, name="grace's tally")
    assert grace["context"] == {"user": "grace", "unit": "letters"} and grace["version"] == 1
    assert grace["assistant_id"] in {a["assistant_id"] for a in await lg.assistants.search(graph_id="tally")}

    thread_id = (await lg.threads.create())["thread_id"]
    graces = await _wait(lg, thread_id, grace["assistant_id"], input={"text": "abc de"})
    assert graces["report"] == "grace: 2 letters"
    # The run's context over the assistant's, key by key; a key the graph's Who lacks is dropped, as LangGraph
    # Platform drops it, rather than failing the run.
    both = await _wait(lg, None, grace["assistant_id"], input={"text": "abc"}, context={"user": "ada", "mood": "x"})
    assert both["report"] == "ada: 1 letters"
    [run] = await lg.runs.list(thread_id)
    assert run["metadata"] is not None and run["metadata"]["assistant_id"] == grace["assistant_id"]

    await lg.assistants.delete(grace["assistant_id"])
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await lg.assistants.get(grace["assistant_id"])
    assert gone.value.response.status_code == 404


async def test_the_store_s_items(lg: LangGraphClient) -> None:
    await lg.store.put_item(["tally", "grace"], "last", {"count": 2})
    await lg.store.put_item(["tally", "ada"], "last", {"count": 6})
    item = await lg.store.get_item(["tally", "grace"], "last")
    assert item is not None and (item["namespace"], item["key"], item["value"]) == (
        ["tally", "grace"],
        "last",
        {"count": 2},
    )

    found = await lg.store.search_items(["tally"], filter={"count": 6})
    assert [(i["namespace"], i["value"]) for i in found["items"]] == [(["tally", "ada"], {"count": 6})]
    listed = await lg.store.list_namespaces(prefix=["tally"])
    assert sorted(listed["namespaces"]) == [["tally", "ada"], ["tally", "grace"]]

    await lg.store.delete_item(["tally", "grace"], "last")
    assert await lg.store.get_item(["tally", "grace"], "last") is None
    assert [i["namespace"] for i in (await lg.store.search_items(["tally"]))["items"]] == [["tally", "ada"]]


async def test_remote_graph(up: Up) -> None:
    tally = RemoteGraph("tally", url=f"{up.url}/langgraph")
    assert await tally.ainvoke({"text": TEXT}, context={"user": "ada"}) == TALLIED  # a run without a thread

    config: RunnableConfig = {
        "configurable": {"thread_id": str(uuid.uuid4())}
    }  # made on its first run, as RemoteGraph asks
    streamed = [u async for u in tally.astream({"text": "a b"}, config, stream_mode="updates", context={"user": "lin"})]
    assert streamed == [{"count": {"count": 2}}, {"report": {"report": "lin: 2 words"}}]
    written = [c async for c in tally.astream({"text": "a b c"}, config, stream_mode="custom")]
    assert written == [{"counted": 3}]

    snapshot = await tally.aget_state(config)
    assert snapshot.values == {"text": "a b c", "count": 3, "report": "someone: 3 words"}  # Who's default user
    assert snapshot.next == () and snapshot.config["configurable"]["checkpoint_id"]
