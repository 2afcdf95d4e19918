"""The official ``langgraph-sdk`` client against the mesh, as a LangGraph Platform user would point it at Threadline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from threadline.assistants import default_assistant_id

from tests.e2e.conftest import Mesh

QUESTION = {"messages": [{"role": "user", "content": "How are runs kept durable?"}]}


@pytest.fixture
async def lg(mesh: Mesh) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=f"{mesh.url}/langgraph")
    yield client
    await client.aclose()


def _humans(values: dict) -> list[str]:
    return [m["content"] for m in values["messages"] if m["type"] == "human"]


async def test_the_agents_graphs_are_registered_with_default_assistants(lg: LangGraphClient) -> None:
    found = await lg.assistants.search(metadata={"created_by": "system"})
    assert {a["graph_id"] for a in found} >= {"agent", "research"}
    research = await lg.assistants.get("research")  # a graph's name is its default assistant
    assert research["assistant_id"] == default_assistant_id("research")
    assert [a["assistant_id"] for a in await lg.assistants.search(graph_id="research")] == [research["assistant_id"]]
    schemas = await lg.assistants.get_schemas("agent")
    assert "messages" in schemas["input_schema"]["properties"]
    drawn = await lg.assistants.get_graph("research")
    assert {"research", "write", "review"} <= {n["id"] for n in drawn["nodes"]}


async def test_a_thread_is_created_found_and_read(lg: LangGraphClient) -> None:
    thread = await lg.threads.create(metadata={"user": "ada"})
    assert thread["status"] == "idle" and thread["metadata"] == {"user": "ada"} and thread["values"] is None

    assert (await lg.threads.get(thread["thread_id"]))["thread_id"] == thread["thread_id"]
    found = await lg.threads.search(metadata={"user": "ada"})
    assert thread["thread_id"] in {t["thread_id"] for t in found}
    empty = await lg.threads.get_state(thread["thread_id"])
    assert empty["values"] == {} and empty["checkpoint"]["checkpoint_id"] is None

    with pytest.raises(httpx.HTTPStatusError) as refused:
        await lg.threads.create(thread_id=thread["thread_id"])
    assert refused.value.response.status_code == 409
    again = await lg.threads.create(thread_id=thread["thread_id"], if_exists="do_nothing")
    assert again["metadata"] == {"user": "ada"}


async def test_a_streamed_run_gives_metadata_then_values_updates_and_message_chunks(lg: LangGraphClient) -> None:
    thread = await lg.threads.create()
    parts = [
        part
        async for part in lg.runs.stream(
            thread["thread_id"], "agent", input=QUESTION, stream_mode=["values", "updates", "messages-tuple"]
        )
    ]

    assert parts[0].event == "metadata" and parts[0].data["run_id"]
    values = [p.data for p in parts if p.event == "values"]
    assert _humans(values[0]) == ["How are runs kept durable?"]
    answer = values[-1]["messages"][-1]
    assert answer["type"] == "ai" and answer["content"]
    assert [next(iter(p.data)) for p in parts if p.event == "updates"] == ["agent", "tools", "agent"]
    # Every message of the graph's messages mode, as LangGraph sends it: the model's chunks, the tool's result.
    chunks = [p.data for p in parts if p.event == "messages"]
    answered = [(chunk, meta) for chunk, meta in chunks if chunk["id"] == answer["id"]]
    assert "".join(chunk["content"] for chunk, _ in answered) == answer["content"]
    assert {meta["langgraph_node"] for _, meta in answered} == {"agent"}
    assert {chunk["type"] for chunk, _ in answered} == {"AIMessageChunk"}
    assert [meta["langgraph_node"] for chunk, meta in chunks if chunk["type"] == "tool"] == ["tools"]

    state = await lg.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == answer["content"]
    history = await lg.threads.get_history(thread["thread_id"], limit=100)
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert len(history) >= 4 and history[-1]["values"].get("messages", []) == []


async def test_a_stream_resumes_after_the_last_event_id_without_repeats(lg: LangGraphClient) -> None:
    thread = await lg.threads.create()
    seen = [p async for p in lg.runs.stream(thread["thread_id"], "agent", input=QUESTION, stream_mode="updates")]
    run_id = seen[0].data["run_id"]
    first_update = next(p for p in seen if p.event == "updates")

    rest = [
        p
        async for p in lg.runs.join_stream(
            thread["thread_id"], run_id, stream_mode="updates", last_event_id=first_update.id
        )
    ]
    assert [p.data for p in rest] == [p.data for p in seen if p.event == "updates"][1:]


async def test_wait_answers_with_the_thread_s_values_and_the_thread_remembers(lg: LangGraphClient) -> None:
    thread = await lg.threads.create(if_exists="do_nothing")
    await lg.runs.wait(thread["thread_id"], "agent", input=QUESTION)
    second = {"messages": [{"role": "user", "content": [{"type": "text", "text": "And how are they cancelled?"}]}]}
    values = await lg.runs.wait(thread["thread_id"], "research", input=second)
    assert _humans(values) == ["How are runs kept durable?", "And how are they cancelled?"]
    assert values["messages"][-1]["type"] == "ai"


async def test_a_background_run_is_joined(lg: LangGraphClient) -> None:
    thread = await lg.threads.create()
    run = await lg.runs.create(thread["thread_id"], "agent", input=QUESTION, metadata={"source": "test"})
    assert run["status"] in ("pending", "running")
    # The client's metadata, and the assistant the run resolved to (a graph's name: its default assistant).
    assert run["metadata"] == {"source": "test", "assistant_id": default_assistant_id("agent"), "assistant_version": 1}

    values = await lg.runs.join(thread["thread_id"], run["run_id"])
    assert values["messages"][-1]["type"] == "ai"
    assert (await lg.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"
    with pytest.raises(httpx.HTTPStatusError) as finished:
        await lg.runs.cancel(thread["thread_id"], run["run_id"])
    assert finished.value.response.status_code == 409


async def test_a_run_without_a_thread_gets_a_new_one(lg: LangGraphClient) -> None:
    values = await lg.runs.wait(None, "agent", input=QUESTION)
    assert _humans(values) == ["How are runs kept durable?"]


async def test_a_run_on_an_unknown_thread_is_a_404_unless_asked_to_create_it(lg: LangGraphClient) -> None:
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await lg.runs.wait("never-made", "agent", input=QUESTION)
    assert missing.value.response.status_code == 404
    values = await lg.runs.wait("made-on-demand", "agent", input=QUESTION, if_not_exists="create")
    assert values["messages"][-1]["type"] == "ai"


async def test_a_conversation_s_runs_are_listed_and_its_state_updated_with_its_reducers(
    mesh: Mesh, lg: LangGraphClient
) -> None:
    thread_id = (await lg.threads.create())["thread_id"]
    await lg.runs.wait(thread_id, "agent", input=QUESTION)
    [run] = await lg.runs.list(thread_id)
    assert run["status"] == "success" and run["assistant_id"] == "agent"
    state = await lg.threads.get_state(thread_id)
    assert state["next"] == [] and state["tasks"] == []
    before = len(state["values"]["messages"])

    note = {"type": "human", "content": "A note added by hand.", "id": "note-1"}
    updated = await lg.threads.update_state(thread_id, {"messages": [note]})
    state = await lg.threads.get_state(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == updated["checkpoint"]["checkpoint_id"]
    assert len(state["values"]["messages"]) == before + 1  # add_messages appended it
    assert state["values"]["messages"][-1]["content"] == "A note added by hand."

    remote = RemoteGraph("agent", url=f"{mesh.url}/langgraph")
    snapshot = await remote.aget_state({"configurable": {"thread_id": thread_id}})
    assert snapshot.values["messages"][-1]["id"] == "note-1" and snapshot.next == ()
