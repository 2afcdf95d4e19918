"""Graphs whose state is not a conversation, as users bring them: a dataclass with a context schema, a TypedDict."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt


@dataclass
class Count:
    n: int = 0
    log: Annotated[list[str], operator.add] = field(default_factory=list)


@dataclass
class Who:
    user: str = "nobody"


def count(state: Count, runtime: Runtime[Who], config: RunnableConfig) -> dict:
    """Adds one, saying so through the stream writer, and logs the context's user and the config's unit."""
    get_stream_writer()({"counting": state.n})
    unit = config["configurable"].get("unit", "-")
    user = runtime.context.user if runtime.context is not None else "nobody"  # LangGraph's context may be absent
    return {"n": state.n + 1, "log": [f"{user}:{unit}"]}


def double(state: Count) -> dict:
    return {"n": state.n * 2}


builder = StateGraph(Count, context_schema=Who)
builder.add_node("count", count)
builder.add_node("double", double)
builder.add_edge(START, "count")
builder.add_edge("count", "double")
builder.add_edge("double", END)
counter = builder.compile()


class Ask(TypedDict, total=False):
    question: str
    reply: str


def ask(state: Ask) -> dict:
    return {"reply": interrupt({"asks": state["question"]})}


asking_builder = StateGraph(Ask)
asking_builder.add_node("ask", ask)
asking_builder.add_edge(START, "ask")
asking_builder.add_edge("ask", END)
asker = asking_builder.compile()
