"""What the agent service adds to a run: the queue, the events and the remote checkpoints.

``python -m bench agent_overhead`` starts the mesh as ``./task up`` does (docs/ as the knowledge
base, the offline answerer, memory on SQLite) and submits runs straight onto the RUNS stream as
the gateway does, timing from the publish to the run's first event and to its final one (sent
once the last checkpoint is stored): one run at a time, then 60 at once with one worker and
with two. In the same run the same graph (same retrieval service, same tools) is invoked in
this process with an in-memory checkpointer: the ratio is the service's cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import nats
from langgraph.checkpoint.memory import InMemorySaver
from threadline.events import RunRequested, StateEventKind, Topology
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline.run_events import RunEvent, StateChunk
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.assistants import build_graph
from threadline_agent.graphs.calculator import make_calculator_tool
from threadline_agent.graphs.knowledge_base import make_knowledge_base_tool
from threadline_agent.worker.execution import Progress, execute_run

from bench.mesh import ROOT, RunningMesh, running_mesh
from bench.query_latency import QUESTIONS
from bench.stats import machine, percentiles

RESULTS = Path(__file__).parent / "results" / "agent_overhead.json"
BURST = 60


def _request(n: int) -> RunRequested:
    return RunRequested(
        run_id=uuid.uuid4().hex, thread_id=uuid.uuid4().hex, tenant_id="default", input=QUESTIONS[n % len(QUESTIONS)]
    )


class _Watcher:
    """When each run's first and final events arrive, from the run events subject of every run."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.final: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0
        self._finished: dict[str, asyncio.Event] = {}

    async def finished(self, run_id: str) -> None:
        await self._finished.setdefault(run_id, asyncio.Event()).wait()

    async def on_event(self, msg: Any) -> None:
        event = RunEvent.model_validate_json(msg.data)
        now = time.perf_counter()
        self.first.setdefault(event.run_id, now)
        if event.is_final:
            self.final[event.run_id] = now
            self._finished.setdefault(event.run_id, asyncio.Event()).set()
            if len(self.final) >= self.expected:
                self.done.set()


async def _through_the_queue(mesh: RunningMesh, total: int, burst: bool) -> dict[str, Any]:
    topology = Topology()
    nc = await nats.connect(mesh.nats_url)
    watcher = _Watcher()
    await nc.subscribe(topology.run_events_wildcard, cb=watcher.on_event)
    js = nc.jetstream()
    sent: dict[str, float] = {}
    try:
        requests = [_request(n) for n in range(total)]
        watcher.expected = total
        started = time.perf_counter()
        for request in requests:
            sent[request.run_id] = time.perf_counter()
            await js.publish(
                topology.runs_requested_for(request.graph_id),
                request.to_bytes(),
                headers={"Nats-Msg-Id": request.run_id},
            )
            if not burst:
                await asyncio.wait_for(watcher.finished(request.run_id), 60)
        await asyncio.wait_for(watcher.done.wait(), 300)
        elapsed = time.perf_counter() - started
    finally:
        await nc.drain()
    return {
        "runs": total,
        "first_event_ms": percentiles([(watcher.first[r] - t) * 1000 for r, t in sent.items()]),
        "final_event_ms": percentiles([(watcher.final[r] - t) * 1000 for r, t in sent.items()]),
        "runs_per_s": round(total / elapsed, 2),
    }


async def _in_process(mesh: RunningMesh, total: int) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(mesh.retrieval_target) as channel:
        tools = [
            make_knowledge_base_tool(retrieval_pb2_grpc.RetrievalServiceStub(channel), 4),
            make_calculator_tool(),
        ]
        graph = build_graph(ExtractiveAnswerer(), tools, InMemorySaver())
        firsts, finals = [], []
        started_all = time.perf_counter()
        for n in range(total):
            started, first = time.perf_counter(), None

            async def emit(payload: Progress) -> None:
                nonlocal first
                first = first or time.perf_counter()

            async def emit_state(mode: StateEventKind, chunk: StateChunk) -> None:
                pass  # the benchmark's runs ask for no state events

            await execute_run(graph, _request(n), emit, emit_state, model="extractive-answerer", timeout_s=60)
            finals.append((time.perf_counter() - started) * 1000)
            firsts.append(((first or time.perf_counter()) - started) * 1000)
        elapsed = time.perf_counter() - started_all
    return {
        "runs": total,
        "first_event_ms": percentiles(firsts),
        "final_event_ms": percentiles(finals),
        "runs_per_s": round(total / elapsed, 2),
    }


def _second_worker(mesh: RunningMesh) -> subprocess.Popen:
    env = {
        **os.environ,
        "NATS_URL": mesh.nats_url,
        "RETRIEVAL_TARGET": mesh.retrieval_target,
        "MEMORY_TARGET": mesh.memory_target,
        "AGENT_HEARTBEAT_FILE": f"/tmp/threadline-bench-agent-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "threadline_agent"], env=env, cwd=ROOT)


def run(quick: bool = False) -> dict[str, Any]:
    sequential = 30 if quick else 100
    with running_mesh() as mesh:
        asyncio.run(_through_the_queue(mesh, 10, burst=False))  # warm-up
        one_at_a_time = asyncio.run(_through_the_queue(mesh, sequential, burst=False))
        one_worker = asyncio.run(_through_the_queue(mesh, BURST, burst=True))
        worker = _second_worker(mesh)
        try:
            time.sleep(8)  # the second worker connects and pulls
            two_workers = asyncio.run(_through_the_queue(mesh, BURST, burst=True))
        finally:
            worker.terminate()
            worker.wait(30)
        local = asyncio.run(_in_process(mesh, sequential))
    result = {
        "benchmark": "agent_overhead",
        "machine": machine(),
        "service_one_at_a_time": one_at_a_time,
        "service_burst_one_worker": one_worker,
        "service_burst_two_workers": two_workers,
        "in_process_one_at_a_time": local,
        "ratio_final_p50_service_over_in_process": round(
            one_at_a_time["final_event_ms"]["p50"] / local["final_event_ms"]["p50"], 2
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
