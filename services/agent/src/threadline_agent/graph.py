"""The graphs users can pick, registered under assistant names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

SYSTEM_PROMPT = (
    "You answer questions from the user's knowledge base. Search it with the search_knowledge_base tool "
    "before answering, answer only from the passages it returns, and cite each passage you use with its "
    "number in square brackets, like [1]. If the knowledge base could not be consulted or holds nothing "
    "relevant, say so plainly instead of guessing. For any arithmetic, use the calculator tool rather than "
    "computing in your head."
)

GraphBuilder = Callable[[BaseChatModel, Sequence[BaseTool], BaseCheckpointSaver | None], CompiledStateGraph]


def build_graph(
    model: BaseChatModel, tools: Sequence[BaseTool], checkpointer: BaseCheckpointSaver | None
) -> CompiledStateGraph:
    """A ReAct loop: the model either calls tools (whose results go back to it) or answers."""
    bound = model.bind_tools(list(tools))

    async def agent(state: MessagesState) -> dict:
        reply = await bound.ainvoke([SystemMessage(SYSTEM_PROMPT), *state["messages"]])
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(list(tools)))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


@dataclass(frozen=True)
class Assistant:
    build: GraphBuilder
    description: str


ASSISTANTS: dict[str, Assistant] = {
    "agent": Assistant(build_graph, "ReAct agent that searches the knowledge base and answers with citations."),
}
DEFAULT_ASSISTANT = "agent"
