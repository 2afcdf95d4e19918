"""The agent's remember/recall tools over a real memory service, on SQLite and on PostgreSQL, run
by LangGraph's ToolNode as the ReAct agent runs them: a fact remembered in one thread is recalled
in another of the same user, and never by another user or tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import ThreadServiceStub
from threadline_agent.graphs.memory_tools import RECALL_TOOL, REMEMBER_TOOL, make_memory_tools, user_of
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.remote.store import RemoteStore

from tests.conftest import free_port


@pytest.fixture
async def agent(memory_target: str) -> AsyncIterator[CompiledStateGraph]:
    """A stand-in for the model, which turns "remember: X" and "recall: Q" into the tool calls, then the tools."""

    def model(state: MessagesState) -> dict:
        said = state["messages"][-1].content
        tool, _, argument = said.partition(": ")
        args = {"fact": argument} if tool == REMEMBER_TOOL else {"query": argument}
        return {"messages": [AIMessage("", tool_calls=[{"name": tool, "args": args, "id": f"call-{len(said)}"}])]}

    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    store = RemoteStore(target=memory_target, tenant_id="acme")
    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode(make_memory_tools(store)))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    yield builder.compile(checkpointer=saver)
    await saver.close()
    await store.close()


async def _say(agent: CompiledStateGraph, text: str, thread: str, tenant: str = "acme", **metadata: str) -> str:
    config: RunnableConfig = {"configurable": {"thread_id": thread, "tenant_id": tenant}, "metadata": metadata}
    result = await agent.ainvoke({"messages": [("user", text)]}, config)
    reply = result["messages"][-1]
    assert isinstance(reply, ToolMessage)
    return str(reply.content)


async def test_a_fact_remembered_in_one_thread_is_recalled_in_another(agent: CompiledStateGraph) -> None:
    assert await _say(agent, "remember: prefers answers in Portuguese", "t1", user_id="ana") == (
        "Remembered: prefers answers in Portuguese"
    )
    await _say(agent, "remember: works on the FAISS index", "t1", user_id="ana")
    await _say(agent, "remember: is allergic to cats", "t1", user_id="ana")

    recalled = await _say(agent, "recall: which index", "t2", user_id="ana")
    assert recalled.splitlines()[0] == "- works on the FAISS index"
    assert len(recalled.splitlines()) == 3

    assert await _say(agent, "recall: ", "t3", user_id="bo") == "Nothing is remembered about this user yet."
    other_tenant = await _say(agent, "recall: ", "t4", tenant="globex", user_id="ana")
    assert other_tenant == "Nothing is remembered about this user yet."


async def test_without_a_user_the_tools_say_so_instead_of_failing(agent: CompiledStateGraph) -> None:
    for text in ("remember: something", "recall: anything"):
        reply = await _say(agent, text, "anonymous")
        assert "No user is known" in reply


async def test_an_erased_user_is_forgotten(memory_target: str, agent: CompiledStateGraph) -> None:
    await _say(agent, "remember: lives in Porto", "t1", user_id="ana")
    async with grpc.aio.insecure_channel(memory_target) as channel:
        erased = await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="acme", user_id="ana"))
    assert erased.store_items == 1
    assert await _say(agent, "recall: ", "t2", user_id="ana") == "Nothing is remembered about this user yet."


async def test_a_user_named_by_email_remembers_and_is_erased(memory_target: str, agent: CompiledStateGraph) -> None:
    """An email (a JWT subject's usual form) holds '.', which the stores use between labels; ids
    that differ only where the escaping works ('.' against its escape, "%2E") stay apart."""
    await _say(agent, "remember: prefers tables", "t1", user_id="ana.lima@example.com")
    await _say(agent, "remember: prefers prose", "t1", user_id="ana%2Elima@example%2Ecom")
    assert await _say(agent, "recall: ", "t2", user_id="ana.lima@example.com") == "- prefers tables"

    async with grpc.aio.insecure_channel(memory_target) as channel:
        erased = await ThreadServiceStub(channel).Erase(
            pb.EraseRequest(tenant_id="acme", user_id="ana.lima@example.com")
        )
    assert erased.store_items == 1
    assert await _say(agent, "recall: ", "t3", user_id="ana.lima@example.com") == (
        "Nothing is remembered about this user yet."
    )
    assert await _say(agent, "recall: ", "t3", user_id="ana%2Elima@example%2Ecom") == "- prefers prose"


async def test_memory_down_is_an_error_the_model_reads() -> None:
    store = RemoteStore(target=f"127.0.0.1:{free_port()}", tenant_id="acme", timeout_s=1.0)
    remember, _ = make_memory_tools(store)
    call = {"name": REMEMBER_TOOL, "args": {"fact": "x"}, "id": "c1", "type": "tool_call"}
    try:
        reply = await remember.ainvoke(call, {"configurable": {"user_id": "ana"}})
    finally:
        await store.close()
    assert reply.status == "error" and "could not be reached (UNAVAILABLE)" in reply.content


def test_the_user_comes_from_the_config_or_the_run_metadata() -> None:
    assert user_of({"configurable": {"user_id": "ana"}, "metadata": {"user_id": "bo"}}) == "ana"
    assert user_of({"metadata": {"user_id": "bo"}}) == "bo"
    assert user_of({"metadata": {"user_id": "ana@example.com"}}) == "ana@example.com"
    assert user_of({}) is None
    assert RECALL_TOOL == "recall"
