"""A graph with a state of its own (no messages) and a run context: it counts the words it is given.

Run it with JSON input and a context, e.g. with the LangGraph SDK::

    await client.runs.wait(None, "tally", input={"text": "to be or not to be"},
                           context={"user": "ada", "unit": "words"})

and it ends with ``{"text": ..., "count": 6, "report": "ada: 6 words"}``. ``count`` also writes its
progress to LangGraph's stream writer, which a client reads with ``stream_mode="custom"``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


@dataclass
class Tally:
    """The graph's state: what the run is given, and what it works out."""

    text: str = ""
    count: int = 0
    report: str = ""


@dataclass
class Who:
    """The run's context (``context_schema``): set per run, never stored in the state."""

    user: str = "someone"
    unit: str = os.environ.get("TALLY_DEFAULT_UNIT", "words")  # langgraph.json's "env" sets it


def count(state: Tally) -> dict:
    counted = len(state.text.split())
    get_stream_writer()({"counted": counted})  # a "custom" stream part; nothing when no client asked for it
    return {"count": counted}


def report(state: Tally, runtime: Runtime[Who]) -> dict:
    who = runtime.context or Who()
    return {"report": f"{who.user}: {state.count} {who.unit}"}


builder = StateGraph(Tally, context_schema=Who)
builder.add_node("count", count)
builder.add_node("report", report)
builder.add_edge(START, "count")
builder.add_edge("count", "report")
builder.add_edge("report", END)
# Compiled without a checkpointer: the worker attaches its own (the memory service's) to every graph.
graph = builder.compile()
