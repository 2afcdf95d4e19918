"""The example project (examples/langgraph.json) loads as it is and its graphs run, directly and on a worker."""

from __future__ import annotations

import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested, Topology
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.loader import load_graphs
from threadline_agent.graphs.platform import Platform

from tests.agent.test_graph import fixed_passages_tool
from tests.agent.test_graph_pools import final_event, pool, streams_of

EXAMPLES = Path(__file__).parents[2] / "examples" / "langgraph.json"


async def test_the_example_graphs_load_and_run() -> None:
    graphs = load_graphs(EXAMPLES)
    assert set(graphs) == {"tally", "kb_chat"}
    for graph in graphs.values():
        graph.prepare(Platform(ExtractiveAnswerer(), [fixed_passages_tool([])]), InMemorySaver(), None)
    tally, chat = graphs["tally"].compiled, graphs["kb_chat"].compiled
    assert tally is not None and chat is not None
    config = {"configurable": {"thread_id": "t1"}}
    ended = await tally.ainvoke({"text": "to be or not to be"}, config, context={"user": "ada"})  # type: ignore[arg-type]
    assert ended == {"text": "to be or not to be", "count": 6, "report": "ada: 6 words"}
    question = {"messages": [{"role": "user", "content": "How are runs kept durable?"}]}
    state = await chat.ainvoke(question, {"configurable": {"thread_id": "t2", "tenant_id": "acme"}})  # type: ignore[arg-type]
    assert "[1]" in state["messages"][-1].text


async def test_a_worker_serves_the_example_project(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("THREADLINE_GRAPHS", str(EXAMPLES))
    topology = Topology(nats_namespace)
    async with streams_of(nc, topology), pool(nats_namespace, tmp_path, "tally") as worker:
        assert set(worker.loaded) == {"tally"}
        run = RunRequested(
            run_id=uuid.uuid4().hex,
            thread_id=uuid.uuid4().hex,
            tenant_id="acme",
            assistant_id="tally",
            input={"text": "to be or not to be"},
            context={"user": "ada"},
        )
        await nc.jetstream().publish(topology.runs_requested_for("tally"), run.to_bytes())
        end = await final_event(nc, topology, run.run_id)
        assert end.kind == "end", end.data
        assert end.result().output == {"text": "to be or not to be", "count": 6, "report": "ada: 6 words"}
