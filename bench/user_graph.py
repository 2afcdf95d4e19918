"""Per-run overhead of a user's graph: the mesh against ``langgraph dev`` and the same graph in process.

``python -m bench user_graph`` takes one trivial graph, ``bench/peers/user_graph/graph.py`` (two
nodes, a TypedDict state, no model, so nothing but the carrying of a run is measured), and runs
it four ways, all up at once:

- ``in_process``: ``builder.compile(checkpointer=InMemorySaver())``, ``ainvoke`` on a new thread
  per run, in the benchmark's own process: the floor;
- ``in_process_postgres``: the same with langgraph's ``AsyncPostgresSaver`` on a fresh database of
  the PostgreSQL server the mesh's memory service uses: the durable floor;
- ``langgraph_dev``: ``langgraph dev`` (langgraph-cli[inmem], ``.venv-langgraph``) serving the
  folder's ``langgraph.json``: ``POST /threads/{new id}/runs/wait`` with ``if_not_exists: create``,
  a new thread per run made by the run itself (its stateless ``/runs/wait`` runs a graph with no
  checkpointer at all, which would not be the same work);
- ``mesh``: the mesh as ``./task up`` starts it with ``THREADLINE_GRAPHS`` at that
  ``langgraph.json`` and memory on PostgreSQL, ``POST /langgraph/threads/{new id}/runs/wait``
  with the same body.

The systems take turns in rounds, each round a batch of runs per system, the order rotating
from round to round, so a noisy machine weighs on all of them alike. One client at a time, then 8
at once (both servers may work 8 runs at once); it writes p50/p95 per system, the mesh's ratio to
each and its overhead in ms to ``bench/results/user_graph.json``. The agent's own run-time
histogram (Prometheus), read around the mesh's batches, splits a mesh run into the agent's share
and the rest (gateway, JetStream, HTTP).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from bench.langgraph_dev import PEERS, langgraph_dev
from bench.mesh import _free_port, running_mesh
from bench.peers.user_graph import graph as user_graph
from bench.postgres import fresh_database
from bench.stats import machine, percentiles

RESULTS = Path(__file__).parent / "results" / "user_graph.json"
GRAPH_CONFIG = PEERS / "user_graph" / "langgraph.json"
GRAPH_ID = "tally"
INPUT: user_graph.Tally = {"text": "to be or not to be"}
EXPECTED: user_graph.Tally = {"text": "to be or not to be", "count": 6, "report": "6 words"}
SYSTEMS = ("in_process", "in_process_postgres", "langgraph_dev", "mesh")
PEERS_OF_MESH = ("in_process", "in_process_postgres", "langgraph_dev")

# One run of the graph on a new thread; raises unless it ended with EXPECTED.
Call = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Level:
    """How many runs each system takes per round, at what concurrency, for how many rounds."""

    concurrency: int
    rounds: int
    runs_per_round: int


def levels(quick: bool) -> tuple[Level, ...]:
    if quick:
        return (Level(1, rounds=2, runs_per_round=10), Level(8, rounds=2, runs_per_round=16))
    return (Level(1, rounds=10, runs_per_round=20), Level(8, rounds=5, runs_per_round=40))


def rotated(names: tuple[str, ...], round_no: int) -> tuple[str, ...]:
    """The systems' order in round ``round_no``: each goes first in turn, so none always runs after the same one."""
    shift = round_no % len(names)
    return names[shift:] + names[:shift]


def agent_run_seconds(metrics: str) -> tuple[float, float]:
    """The agent's ``threadline_agent_run_duration_seconds`` so far, from its Prometheus text: (seconds, runs)."""
    seconds = runs = 0.0
    for line in metrics.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("threadline_agent_run_duration_seconds_sum"):
            seconds += float(value)
        elif name.startswith("threadline_agent_run_duration_seconds_count"):
            runs += float(value)
    return seconds, runs


def summarize(
    level: Level, samples: dict[str, list[float]], elapsed_s: dict[str, float], agent: tuple[float, float]
) -> dict[str, Any]:
    """Latency percentiles and throughput per system; the mesh's p50 and p95 as a multiple of each
    peer's, its extra milliseconds per run at p50, and how much of a mesh run the agent held it
    (``agent``: the seconds and runs its histogram grew by over the mesh's batches)."""
    latency = {name: percentiles(samples[name]) for name in samples}
    mesh = latency["mesh"]
    peers = [p for p in PEERS_OF_MESH if p in latency]
    agent_ms = agent[0] / agent[1] * 1000
    return {
        "concurrency": level.concurrency,
        "rounds": level.rounds,
        "runs_per_round": level.runs_per_round,
        "latency_ms": latency,
        "runs_per_s": {name: round(len(samples[name]) / elapsed_s[name], 1) for name in samples},
        "mesh_over": {p: {q: round(mesh[q] / latency[p][q], 2) for q in ("p50", "p95")} for p in peers},
        "mesh_overhead_ms_p50": {p: round(mesh["p50"] - latency[p]["p50"], 2) for p in peers},
        # The agent's share of a mesh run: from taking it off JetStream to its final event, checkpoints
        # included; the rest is the gateway, JetStream and HTTP. A mean, as the histogram gives it.
        "mesh_agent_run_mean_ms": round(agent_ms, 2),
        "mesh_runs_over_1s": sum(1 for ms in samples["mesh"] if ms > 1000),
    }


def _checked(result: Any, system: str) -> None:
    if result != EXPECTED:
        raise RuntimeError(f"{system} ended the run with {result!r}, not {EXPECTED!r}")


def _in_process(saver: BaseCheckpointSaver, system: str) -> Call:
    graph = user_graph.builder.compile(checkpointer=saver)

    async def call() -> None:
        _checked(await graph.ainvoke(INPUT, {"configurable": {"thread_id": str(uuid.uuid4())}}), system)

    return call


def _over_http(client: httpx.AsyncClient, api: str, system: str) -> Call:
    # A new thread per run, created by the run itself: langgraph dev runs a thread-less (stateless) run
    # without any checkpointer, so that would not be the same work as the mesh's.
    body = {"assistant_id": GRAPH_ID, "input": INPUT, "if_not_exists": "create"}

    async def call() -> None:
        reply = await client.post(f"{api}/threads/{uuid.uuid4()}/runs/wait", json=body)
        reply.raise_for_status()
        _checked(reply.json(), system)

    return call


async def _batch(call: Call, runs: int, concurrency: int) -> tuple[list[float], float]:
    """``runs`` calls, ``concurrency`` at a time: each one's latency in ms, and the batch's seconds."""
    latencies: list[float] = []
    left = iter(range(runs))

    async def client_loop() -> None:
        for _ in left:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def _agent_run_seconds(client: httpx.AsyncClient, metrics_url: str) -> tuple[float, float]:
    reply = await client.get(metrics_url)
    reply.raise_for_status()
    return agent_run_seconds(reply.text)


async def _measure(
    mesh_url: str, agent_metrics_url: str, langgraph_url: str, database_url: str, quick: bool
) -> list[dict[str, Any]]:
    plan = levels(quick)
    clients = max(level.concurrency for level in plan)
    limits = httpx.Limits(max_connections=2 * clients, max_keepalive_connections=2 * clients)
    # One connection, as langgraph documents it: the saver serializes its calls under a lock whatever it is given.
    async with (
        httpx.AsyncClient(timeout=60, limits=limits) as client,
        AsyncPostgresSaver.from_conn_string(database_url) as durable,
    ):
        await durable.setup()
        calls = {
            "in_process": _in_process(InMemorySaver(), "in_process"),
            "in_process_postgres": _in_process(durable, "in_process_postgres"),
            "langgraph_dev": _over_http(client, langgraph_url, "langgraph_dev"),
            "mesh": _over_http(client, f"{mesh_url}/langgraph", "mesh"),
        }
        for call in calls.values():  # warm-up: imports, connections, consumers, caches
            await _batch(call, 10 if quick else 20, 1)
        figures = []
        for level in plan:
            samples: dict[str, list[float]] = {name: [] for name in SYSTEMS}
            elapsed = dict.fromkeys(SYSTEMS, 0.0)
            agent = [0.0, 0.0]
            for round_no in range(level.rounds):
                for name in rotated(SYSTEMS, round_no):
                    if name == "mesh":
                        before = await _agent_run_seconds(client, agent_metrics_url)
                    latencies, seconds = await _batch(calls[name], level.runs_per_round, level.concurrency)
                    samples[name] += latencies
                    elapsed[name] += seconds
                    if name == "mesh":
                        after = await _agent_run_seconds(client, agent_metrics_url)
                        agent = [agent[0] + after[0] - before[0], agent[1] + after[1] - before[1]]
            figures.append(summarize(level, samples, elapsed, (agent[0], agent[1])))
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    jobs = max(level.concurrency for level in levels(quick))
    agent_metrics_port = _free_port()
    mesh_env = {
        "THREADLINE_GRAPHS": str(GRAPH_CONFIG),
        "AGENT_CONCURRENCY": str(jobs),  # as many runs at once as langgraph dev's --n-jobs-per-worker
        "AGENT_METRICS_PORT": str(agent_metrics_port),
        "DATABASE_URL": fresh_database("threadline_bench_user_graph_mesh"),
        "THREADLINE_SAMPLE_DIR": "",  # the graph searches nothing: no knowledge base to load
    }
    local_database = fresh_database("threadline_bench_user_graph_local")
    quiet = {"LOG_LEVEL": "WARNING"}  # as running_mesh runs the mesh: neither pays for log lines per run
    with running_mesh(extra_env=mesh_env) as mesh, langgraph_dev(GRAPH_CONFIG, jobs, quiet) as langgraph_url:
        metrics_url = f"http://127.0.0.1:{agent_metrics_port}/metrics"
        figures = asyncio.run(_measure(mesh.url, metrics_url, langgraph_url, local_database, quick))
    result = {
        "benchmark": "user_graph",
        "graph": "bench/peers/user_graph/graph.py: two nodes, TypedDict state, no model",
        "input": INPUT,
        "machine": machine(),
        "levels": figures,
        "duration_s": round(time.monotonic() - started),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
