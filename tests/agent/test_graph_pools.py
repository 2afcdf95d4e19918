"""A worker pool per graph, on the machine's real NATS: each graph's runs on its own subject and consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig, DeliverPolicy
from threadline.events import RunRequested, Topology
from threadline.nats import ensure_streams
from threadline.run_events import RunEvent
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.agent_worker import AgentWorker
from threadline_gateway.run_bus import RunBus

from tests.conftest import NATS_URL, free_port


@asynccontextmanager
async def pool(namespace: str, tmp_path: Path, graphs: str) -> AsyncIterator[AgentWorker]:
    """A worker serving ``graphs`` (AGENT_GRAPHS); the streams are the test's to delete."""
    settings = AgentSettings(
        nats_url=NATS_URL,
        nats_namespace=namespace,
        AGENT_HEARTBEAT_FILE=tmp_path / f"alive-{graphs}",
        RETRIEVAL_TARGET=f"127.0.0.1:{free_port()}",
        AGENT_GRAPHS=graphs,
        AGENT_FETCH_TIMEOUT_S=1.0,
    )
    worker = AgentWorker(settings, checkpointer=InMemorySaver(), model=ExtractiveAnswerer())
    await worker.app.start()
    try:
        yield worker
    finally:
        await worker.app.stop()


@asynccontextmanager
async def streams_of(nc: NatsClient, topology: Topology) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for stream in (topology.runs_stream, topology.run_events_stream):
            await nc.jetstream().delete_stream(stream)


async def submit(nc: NatsClient, topology: Topology, assistant: str) -> RunRequested:
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id=uuid.uuid4().hex, tenant_id="acme", assistant_id=assistant)
    run = run.model_copy(update={"input": "How are runs kept durable?"})
    await nc.jetstream().publish(
        topology.runs_requested_for(run.graph_id), run.to_bytes(), headers={"Nats-Msg-Id": run.run_id}
    )
    return run


async def final_event(nc: NatsClient, topology: Topology, run_id: str, timeout_s: float = 60) -> RunEvent:
    received: asyncio.Queue[RunEvent] = asyncio.Queue()

    async def on_message(msg) -> None:
        received.put_nowait(RunEvent.model_validate_json(msg.data))

    sub = await nc.jetstream().subscribe(
        topology.run_events(run_id),
        cb=on_message,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        async with asyncio.timeout(timeout_s):
            while not (event := await received.get()).is_final:
                pass
    finally:
        await sub.unsubscribe()
    return event


def served(worker: AgentWorker, graph: str) -> float:
    value = worker.metrics.registry.get_sample_value(
        "threadline_agent_runs_total", {"assistant": graph, "outcome": "success"}
    )
    return value or 0.0


async def counted(worker: AgentWorker, graph: str, runs: int) -> bool:
    """Whether ``worker`` counts ``runs`` of ``graph``, once the count that follows the final event has landed."""
    for _ in range(50):
        if served(worker, graph) >= runs:
            break
        await asyncio.sleep(0.05)
    return served(worker, graph) == runs


async def test_each_pool_takes_only_its_graphs_runs(nats_namespace: str, nc: NatsClient, tmp_path: Path) -> None:
    topology = Topology(nats_namespace)
    async with (
        streams_of(nc, topology),
        pool(nats_namespace, tmp_path, "agent") as agents,
        pool(nats_namespace, tmp_path, "research") as researchers,
    ):
        assert set(agents.loaded) == {"agent"} and set(researchers.loaded) == {"research"}
        runs = [await submit(nc, topology, graph) for graph in ("agent", "research", "agent", "research")]
        ends = [await final_event(nc, topology, run.run_id) for run in runs]
        assert [e.kind for e in ends] == ["end"] * 4
        assert await counted(agents, "agent", 2) and served(agents, "research") == 0
        assert await counted(researchers, "research", 2) and served(researchers, "agent") == 0
        consumers = {c.name: c.config.filter_subject for c in await nc.jetstream().consumers_info(topology.runs_stream)}
        assert consumers == {
            "agent-workers-agent": f"{nats_namespace}.runs.requested.agent",
            "agent-workers-research": f"{nats_namespace}.runs.requested.research",
        }


async def test_a_run_for_a_graph_no_worker_serves_waits_pending_until_its_pool_starts(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    topology = Topology(nats_namespace)
    bus = await RunBus.connect(NATS_URL, topology)
    try:
        async with streams_of(nc, topology), pool(nats_namespace, tmp_path, "agent") as agents:
            run = await submit(nc, topology, "research")
            await asyncio.sleep(2.5)  # more than the agent pool's fetches: it never sees the run
            assert await bus.status(run.run_id) == "pending"
            assert (await nc.jetstream().stream_info(topology.runs_stream)).state.messages == 1
            waiting, _ = await bus.workers()  # the gateway's readiness sums over the graphs' consumers
            assert waiting >= 1
            async with pool(nats_namespace, tmp_path, "research") as researchers:
                end = await final_event(nc, topology, run.run_id)
                assert end.kind == "end" and end.result().assistant_id == "research"
                assert await counted(researchers, "research", 1) and served(agents, "research") == 0
                assert await bus.status(run.run_id) == "success"
    finally:
        await bus.close()


async def test_the_single_subject_layout_is_migrated_in_place(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    """A RUNS stream on the old subject, with the old unfiltered consumer: updated, the consumer replaced."""
    from nats.js.api import RetentionPolicy, StreamConfig

    topology = Topology(nats_namespace)
    js = nc.jetstream()
    old_subject = f"{nats_namespace}.runs.requested"
    await js.add_stream(
        StreamConfig(name=topology.runs_stream, subjects=[old_subject], retention=RetentionPolicy.WORK_QUEUE)
    )
    await js.add_consumer(topology.runs_stream, ConsumerConfig(durable_name=topology.legacy_runs_consumer))
    await ensure_streams(js, topology)
    assert (await js.stream_info(topology.runs_stream)).config.subjects == [topology.runs_requested_wildcard]
    async with streams_of(nc, topology), pool(nats_namespace, tmp_path, "agent"):
        names = [c.name for c in await js.consumers_info(topology.runs_stream)]
        assert names == ["agent-workers-agent"]
        run = await submit(nc, topology, "agent")
        assert (await final_event(nc, topology, run.run_id)).kind == "end"


PER_RUN = """
from typing import TypedDict

from langgraph.graph import START, StateGraph


class Order(TypedDict, total=False):
    dish: str
    served: str


def make_graph(config):
    flavour = config["configurable"].get("flavour", "plain")

    def serve(state: Order) -> dict:
        return {"served": f"{flavour} {state['dish']}"}

    builder = StateGraph(Order)
    builder.add_node("serve", serve)
    builder.add_edge(START, "serve")
    return builder
"""


async def test_a_factory_of_the_runs_config_is_built_for_each_run(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "orders.py").write_text(PER_RUN)
    (tmp_path / "langgraph.json").write_text('{"graphs": {"orders": "./orders.py:make_graph"}}')
    monkeypatch.setenv("THREADLINE_GRAPHS", str(tmp_path / "langgraph.json"))
    topology = Topology(nats_namespace)
    async with streams_of(nc, topology), pool(nats_namespace, tmp_path, "orders") as worker:
        assert worker.loaded["orders"].per_run and worker.graphs == {}
        outputs = []
        for flavour in ("spicy", "mild"):
            run = RunRequested.model_validate(
                {
                    "run_id": uuid.uuid4().hex,
                    "thread_id": uuid.uuid4().hex,
                    "tenant_id": "acme",
                    "assistant_id": "orders",
                    "input": {"dish": "soup"},
                    "config": {"configurable": {"flavour": flavour}},
                }
            )
            await nc.jetstream().publish(topology.runs_requested_for("orders"), run.to_bytes())
            end = await final_event(nc, topology, run.run_id)
            assert end.kind == "end", end.data
            outputs.append(end.result().output)
        assert outputs == [{"dish": "soup", "served": "spicy soup"}, {"dish": "soup", "served": "mild soup"}]
