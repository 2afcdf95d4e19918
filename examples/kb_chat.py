"""A message graph on the platform's knowledge base: search it with the question, then answer from what it found.

``make_graph`` asks for the :class:`Platform` by annotation, so the worker calls it once at start with
the deployment's chat model and tools (the tenant's knowledge base among them), as langgraph-api
passes ``ServerRuntime`` to a factory that asks for it.
"""

from __future__ import annotations

import uuid

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from threadline_agent.graphs.platform import Platform

INSTRUCTIONS = "Answer from the numbered passages above only, citing each one you use like [1]."


def make_graph(platform: Platform) -> StateGraph:
    search = platform.tool("search_knowledge_base")

    async def look_up(state: MessagesState, config: RunnableConfig) -> dict:
        question = next(m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
        call = {"name": search.name, "args": {"query": question}, "id": f"call_{uuid.uuid4().hex[:24]}"}
        found = await search.ainvoke({**call, "type": "tool_call"}, config)
        return {"messages": [AIMessage(content="", tool_calls=[call]), found]}

    async def answer(state: MessagesState) -> dict:
        return {"messages": [await platform.model.ainvoke([*state["messages"], SystemMessage(INSTRUCTIONS)])]}

    builder = StateGraph(MessagesState)
    builder.add_node("look_up", look_up)
    builder.add_node("answer", answer)
    builder.add_edge(START, "look_up")
    builder.add_edge("look_up", "answer")
    builder.add_edge("answer", END)
    return builder  # a StateGraph: the worker compiles it with its checkpointer and store
