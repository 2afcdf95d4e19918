"""A checkpoint's next tasks as the gateway derives them, against LangGraph's own ``get_state`` of the same graph."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from threadline_gateway.pending_tasks import PendingTask, next_tasks


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(saver: InMemorySaver):  # a fan-out to two nodes, one of which waits on a person
    def ask(state: Log) -> dict:
        return {"log": [interrupt("ok?")]}

    builder = StateGraph(Log)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("b", lambda s: {"log": ["b"]})
    builder.add_node("ask", ask)
    builder.add_node("d", lambda s: {"log": ["d"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("a", "ask")
    builder.add_edge("ask", "d")
    builder.add_edge("b", END)
    builder.add_edge("d", END)
    return builder.compile(checkpointer=saver)


def _derived(saved: CheckpointTuple) -> list[PendingTask]:
    checkpoint = {k: v for k, v in saved.checkpoint.items() if k != "channel_values"}
    writes = [(task_id, channel, value) for task_id, channel, value in saved.pending_writes or []]
    return next_tasks(checkpoint, set(saved.checkpoint["channel_values"]), saved.metadata["step"], writes)


def _as_langgraph(tasks: list[PendingTask]) -> list[tuple[str, str, tuple]]:
    return [(t.id, t.name, tuple(i.value for i in t.interrupts)) for t in tasks]


def test_next_and_tasks_are_langgraph_s_for_every_checkpoint() -> None:
    saver = InMemorySaver()
    graph = _graph(saver)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"log": []}, config)
    states = list(graph.get_state_history(config))
    saved = list(saver.list(config))
    # The same tasks; LangGraph orders them by the graph's nodes, which the gateway does not know: by name.
    assert [sorted(s.next) for s in states] == [["ask", "b"], ["a"], ["__start__"]]
    for state, tup in zip(states, saved, strict=True):
        derived = _derived(tup)
        assert tuple(t.name for t in derived) == tuple(sorted(state.next))
        expected = sorted((t.id, t.name, tuple(i.value for i in t.interrupts)) for t in state.tasks)
        assert sorted(_as_langgraph(derived)) == expected

    graph.invoke(Command(resume="yes"), config)
    assert graph.get_state(config).next == () and _derived(saver.get_tuple(config)) == []
