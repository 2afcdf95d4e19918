"""The built-in graphs, ``agent`` and ``research``: factories of the platform's model and tools.

They are declared in this package's ``langgraph.json`` and loaded like any user's graph
(graphs/loader.py); each asks for the :class:`Platform` by annotation and carries its
:class:`Assistant` metadata (the node that ends a run, the nodes that answer).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from threadline_agent.graphs.approval import (
    APPROVAL_NODE,
    TOOLS_NODE,
    ToolResolver,
    after_tools,
    make_approval_node,
    make_tools_node,
    route_tool_calls,
)
from threadline_agent.graphs.client_tools import answer_left_calls
from threadline_agent.graphs.knowledge_base import KNOWLEDGE_BASE_TOOL
from threadline_agent.graphs.platform import Assistant, Platform, RunTools, assistant

__all__ = ["ANSWER_NODES", "Assistant", "agent", "build_graph", "build_research_graph", "research"]

SYSTEM_PROMPT = (
    "You answer questions from the user's knowledge base. Search it with the search_knowledge_base tool "
    "before answering, answer only from the passages it returns, and cite each passage you use with its "
    "number in square brackets, like [1]. If the knowledge base could not be consulted or holds nothing "
    "relevant, say so plainly instead of guessing. For any arithmetic, use the calculator tool rather than "
    "computing in your head."
)


class GraphBuilder(Protocol):
    def __call__(
        self,
        model: BaseChatModel,
        tools: Sequence[BaseTool],
        checkpointer: BaseCheckpointSaver | None,
        *,
        approval_tools: Collection[str] = (),
    ) -> CompiledStateGraph: ...


def build_graph(
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    checkpointer: BaseCheckpointSaver | None,
    *,
    approval_tools: Collection[str] = (),
    resolve: ToolResolver | None = None,
) -> CompiledStateGraph:
    """A ReAct loop: the model either calls tools (whose results go back to it) or answers.

    A call of a tool in ``approval_tools`` first stops the run for a person's decision (see ``approval``).
    With ``resolve`` (``Platform.run_tools``) each run's tools come from its config instead of ``tools``:
    its MCP servers' and its client's too, one graph serving every assistant. A reply calling only client
    tools ends the run, which the client continues with their results.
    """
    fixed = RunTools(list(tools))

    async def agent(state: MessagesState, config: RunnableConfig) -> dict:
        run = await resolve(config) if resolve is not None else fixed
        messages = answer_left_calls(state["messages"])
        choice: Any = run.client.choice if _choice_applies(messages, run) else None  # a name, a mode or a dict
        bound = model.bind_tools([*run.tools, *run.client.specs], tool_choice=choice)
        reply = await bound.ainvoke([SystemMessage(SYSTEM_PROMPT + _unavailable_note(run)), *messages])
        return {"messages": [reply]}

    needs_approval = frozenset(approval_tools)
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node(TOOLS_NODE, make_tools_node(tools, resolve))
    builder.add_node(APPROVAL_NODE, make_approval_node(needs_approval), destinations=("agent", TOOLS_NODE, END))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route_tool_calls(needs_approval), [APPROVAL_NODE, TOOLS_NODE, END])
    builder.add_conditional_edges(TOOLS_NODE, after_tools, ["agent", END])
    return builder.compile(checkpointer=checkpointer)


def _choice_applies(messages: Sequence[AnyMessage], run: RunTools) -> bool:
    """Whether the client's ``tool_choice`` binds this reply: the run's first, not one after the platform's own
    tools ran (with "required" the loop would otherwise never end)."""
    ours = {tool.name for tool in run.tools}
    last = messages[-1] if messages else None
    return not (isinstance(last, ToolMessage) and last.name in ours)


def _unavailable_note(run: RunTools) -> str:
    """Tells the model which MCP servers' tools it lacks this run, so it says so rather than guess."""
    if not run.unavailable:
        return ""
    lines = "".join(f"\n- {name}: {why}" for name, why in sorted(run.unavailable.items()))
    return f"\n\nThese tool servers are unavailable for this answer, so their tools cannot be used:{lines}"


WRITE_PROMPT = (
    "Answer the user's question from the numbered passages of their knowledge base above, and only from "
    "them. Cite each passage you use with its number in square brackets, like [1]. If they hold nothing "
    "relevant, say so plainly instead of guessing."
)
NO_CITATION_NOTE = "\n\n(Review: this answer cites none of the passages found; check it against the sources.)"


def build_research_graph(
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    checkpointer: BaseCheckpointSaver | None,
    *,
    approval_tools: Collection[str] = (),
) -> CompiledStateGraph:
    """research -> write -> review: always search first, answer from what was found, then check the citations.

    Its one tool call is a fixed step, not the model's choice, so ``approval_tools`` does not apply.

    Steps a user can follow and rely on, where the ReAct agent leaves the order to the model:
    the review drops citations of passages that were never found and flags an answer that
    cites nothing although passages were.
    """
    search = next(tool for tool in tools if tool.name == KNOWLEDGE_BASE_TOOL)

    async def research(state: MessagesState, config: RunnableConfig) -> dict:
        question = next(m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
        call = {
            "name": search.name,
            "args": {"query": question},
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "tool_call",
        }
        result = await search.ainvoke(call, config)
        return {"messages": [AIMessage(content="", tool_calls=[call]), result]}

    async def write(state: MessagesState) -> dict:
        return {"messages": [await model.ainvoke([*state["messages"], SystemMessage(WRITE_PROMPT)])]}

    def review(state: MessagesState) -> dict:
        answer, found = state["messages"][-1], state["messages"][-2]
        passages = len(found.artifact or []) if isinstance(found, ToolMessage) else 0
        text = re.sub(r"\[(\d+)\]", lambda m: m.group() if 1 <= int(m.group(1)) <= passages else "", answer.text)
        if passages and not re.search(r"\[\d+\]", text):
            text += NO_CITATION_NOTE
        if text == answer.text:
            return {}
        return {"messages": [answer.model_copy(update={"content": text})]}  # same id: replaces the draft

    builder = StateGraph(MessagesState)
    builder.add_node("research", research)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", "review")
    return builder.compile(checkpointer=checkpointer)


# A ReAct agent: the model picks its tools, and answers with citations.
@assistant(final_node="agent", answer_nodes=("agent",))
def agent(platform: Platform) -> CompiledStateGraph:
    return build_graph(
        platform.model, platform.tools, None, approval_tools=platform.approval_tools, resolve=platform.run_tools
    )


# Research, write, review: always searches first and checks the answer's citations.
@assistant(final_node="review", answer_nodes=("write",))
def research(platform: Platform) -> CompiledStateGraph:
    return build_research_graph(platform.model, platform.tools, None, approval_tools=platform.approval_tools)


# The nodes whose model output is the answer the user reads, streamed as tokens (of every built-in graph).
ANSWER_NODES = frozenset({"agent", "write"})
