"""The user-graph benchmark's pure parts: the systems' turns, its summary, and the graph it serves."""

from __future__ import annotations

import uuid

from langgraph.checkpoint.memory import InMemorySaver
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bench import user_graph
from bench.peers.user_graph import graph


def test_every_system_goes_first_once_in_as_many_rounds() -> None:
    orders = [user_graph.rotated(user_graph.SYSTEMS, n) for n in range(len(user_graph.SYSTEMS))]

    assert orders[0] == user_graph.SYSTEMS
    assert [order[0] for order in orders] == list(user_graph.SYSTEMS)
    assert all(sorted(order) == sorted(user_graph.SYSTEMS) for order in orders)
    assert user_graph.rotated(user_graph.SYSTEMS, len(user_graph.SYSTEMS)) == user_graph.SYSTEMS


def test_the_summary_gives_the_mesh_ratio_and_overhead_against_each_peer() -> None:
    samples = {
        "in_process": [2.0] * 19 + [4.0],
        "in_process_postgres": [5.0] * 20,
        "langgraph_dev": [1000.0] * 20,
        "mesh": [30.0] * 19 + [1500.0],
    }
    elapsed = {"in_process": 0.05, "in_process_postgres": 0.1, "langgraph_dev": 20.0, "mesh": 0.625}

    agent = (0.4, 20.0)  # 20 runs held 20 ms each by the agent

    figures = user_graph.summarize(user_graph.Level(1, rounds=2, runs_per_round=10), samples, elapsed, agent)

    assert figures["latency_ms"]["mesh"]["p50"] == 30.0 and figures["latency_ms"]["mesh"]["p95"] == 1500.0
    assert figures["mesh_over"]["in_process"] == {"p50": 15.0, "p95": 375.0}
    assert figures["mesh_over"]["langgraph_dev"] == {"p50": 0.03, "p95": 1.5}
    assert figures["mesh_overhead_ms_p50"] == {"in_process": 28.0, "in_process_postgres": 25.0, "langgraph_dev": -970.0}
    assert figures["runs_per_s"] == {
        "in_process": 400.0,
        "in_process_postgres": 200.0,
        "langgraph_dev": 1.0,
        "mesh": 32.0,
    }
    assert figures["mesh_agent_run_mean_ms"] == 20.0
    assert figures["mesh_runs_over_1s"] == 1


def test_the_agent_run_time_is_read_from_its_prometheus_histogram_over_every_assistant() -> None:
    registry = CollectorRegistry()
    runs = Histogram("threadline_agent_run_duration_seconds", "runs", ["assistant"], registry=registry)
    runs.labels("tally").observe(0.25)
    runs.labels("tally").observe(0.5)
    runs.labels("agent").observe(1.0)
    Counter("threadline_agent_runs", "runs", registry=registry).inc(7)

    assert user_graph.agent_run_seconds(generate_latest(registry).decode()) == (1.75, 3.0)


async def test_the_graph_ends_with_what_the_benchmark_checks_every_run_against() -> None:
    compiled = graph.builder.compile(checkpointer=InMemorySaver())

    result = await compiled.ainvoke(user_graph.INPUT, {"configurable": {"thread_id": str(uuid.uuid4())}})

    assert result == user_graph.EXPECTED
