"""The trivial user graph of ``bench/user_graph.py``: two nodes, a TypedDict state, no model.

This file is what all three systems serve, so their times differ only by what carries a run:
``langgraph dev`` and the mesh load it from this folder's ``langgraph.json`` (each attaching its
own checkpointer to ``graph``), the benchmark compiles ``builder`` with the checkpointer it compares.
"""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class Tally(TypedDict, total=False):
    text: str
    count: int
    report: str


def count(state: Tally) -> dict[str, int]:
    return {"count": len(state["text"].split())}


def report(state: Tally) -> dict[str, str]:
    return {"report": f"{state['count']} words"}


builder = StateGraph(Tally)
builder.add_node("count", count)
builder.add_node("report", report)
builder.add_edge(START, "count")
builder.add_edge("count", "report")
builder.add_edge("report", END)
graph = builder.compile()
