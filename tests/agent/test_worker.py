"""The worker over the machine's real NATS: a run goes in on the RUNS stream, its events come out in order.

No retrieval service runs here: the knowledge-base tool points at a port nobody listens on,
which is also the retrieval-outage case: the run must still end with an answer that says so.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import httpx
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig, DeliverPolicy
from threadline.events import RunRequested, Topology
from threadline.run_events import RunEvent
from threadline_agent.liveness import fresh
from threadline_agent.worker.agent_worker import AgentWorker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def run_and_collect(nc: NatsClient, topology: Topology, run: RunRequested) -> list[tuple[RunEvent, dict]]:
    """Submit as the gateway does and read the run's events from the RUN_EVENTS stream until the final one."""
    js = nc.jetstream()
    received: asyncio.Queue = asyncio.Queue()

    async def on_message(msg) -> None:
        received.put_nowait((RunEvent.model_validate_json(msg.data), dict(msg.headers or {})))

    sub = await js.subscribe(
        topology.run_events(run.run_id),
        cb=on_message,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    headers = {"Nats-Msg-Id": run.run_id, "traceparent": TRACEPARENT}
    # On its graph's subject; a run for a graph no worker serves on the agent's, so that a worker refuses it.
    graph = run.graph_id if run.graph_id in ("agent", "research", "planner", "supervisor") else "agent"
    await js.publish(topology.runs_requested_for(graph), run.to_bytes(), headers=headers)
    events = []
    async with asyncio.timeout(60):
        while not events or not events[-1][0].is_final:
            events.append(await received.get())
    await sub.unsubscribe()
    return events


async def runs_left(nc: NatsClient, topology: Topology) -> int:
    """Runs still on the work queue, once the ack that follows the final event has had a moment to land."""
    for _ in range(50):
        info = await nc.jetstream().stream_info(topology.runs_stream)
        if info.state.messages == 0:
            break
        await asyncio.sleep(0.05)
    return info.state.messages


async def test_a_run_without_retrieval_still_ends_with_an_answer(worker: AgentWorker, nc: NatsClient) -> None:
    topology = worker.topology
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id="thread-1", tenant_id="acme", input="How are runs kept?")
    events = await run_and_collect(nc, topology, run)

    assert [e.seq for e, _ in events] == list(range(len(events)))
    kinds = [e.kind for e, _ in events]
    assert kinds[:3] == ["metadata", "tool_call", "tool_result"]
    assert kinds[-2:] == ["citations", "end"]
    assert set(kinds[3:-2]) == {"token"}
    metadata, tool_call, tool_result = (e.data for e, _ in events[:3])
    assert metadata == {"run_id": run.run_id, "thread_id": "thread-1", "assistant_id": "agent"}
    assert tool_call["name"] == "search_knowledge_base"
    assert tool_call["args"] == {"query": "How are runs kept?"}
    assert tool_result == {
        "name": "search_knowledge_base",
        "tool_call_id": tool_call["id"],
        "status": "error",
        "citations": 0,
        "rejected": False,
    }
    end = events[-1][0].data
    assert "could not consult the knowledge base" in end["answer"]
    assert "".join(e.data["text"] for e, _ in events if e.kind == "token") == end["answer"]
    assert end["citations"] == []
    assert (end["run_id"], end["thread_id"], end["assistant_id"]) == (run.run_id, "thread-1", "agent")
    assert end["model"] == "extractive-answerer"
    assert end["usage"]["approximate"] is True
    assert end["usage"]["cost_usd"] == 0.0  # the offline answerer is free; priced models by AGENT_MODEL_PRICES
    # Every event carries the trace of the request that started the run.
    assert all(TRACE_ID in headers.get("traceparent", "") for _, headers in events)
    # Acked: the work queue is empty.
    assert await runs_left(nc, topology) == 0


async def test_the_thread_keeps_its_earlier_turns(worker: AgentWorker, nc: NatsClient) -> None:
    for text in ("How are runs kept?", "and why?"):
        run = RunRequested(run_id=uuid.uuid4().hex, thread_id="thread-2", tenant_id="acme", input=text)
        events = await run_and_collect(nc, worker.topology, run)
    tool_call = next(e.data for e, _ in events if e.kind == "tool_call")
    assert tool_call["args"] == {"query": "How are runs kept? and why?"}


async def test_an_unknown_assistant_ends_with_an_error_event(worker: AgentWorker, nc: NatsClient) -> None:
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id="t", tenant_id="acme", assistant_id="nope", input="Hi")
    events = await run_and_collect(nc, worker.topology, run)
    assert [e.kind for e, _ in events] == ["metadata", "error"]
    assert events[-1][0].data["code"] == "assistant_not_found"
    assert "nope" in events[-1][0].data["message"]
    assert await runs_left(nc, worker.topology) == 0


async def test_a_waiting_worker_is_visible_to_the_gateway(worker: AgentWorker, nc: NatsClient) -> None:
    """The gateway's readiness counts pull requests waiting on the shared consumer."""
    # A worker re-issues its pull request every few seconds; between two there is a moment with none.
    for _ in range(50):
        info = await nc.jetstream().consumer_info(
            worker.topology.runs_stream, worker.topology.runs_consumer_for("agent")
        )
        if info.num_waiting:
            break
        await asyncio.sleep(0.1)
    assert info.num_waiting >= 1
    assert info.config.ack_wait == 30


async def test_a_malformed_run_request_is_dropped_not_redelivered(worker: AgentWorker, nc: NatsClient) -> None:
    await nc.jetstream().publish(worker.topology.runs_requested_for("agent"), b'{"not": "a run"}')
    assert await runs_left(nc, worker.topology) == 0


async def test_a_connected_worker_keeps_its_heartbeat_fresh(worker: AgentWorker) -> None:
    heartbeat = worker.settings.heartbeat_file
    assert fresh(heartbeat, max_age_s=5)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "threadline_agent.liveness", "--file", str(heartbeat), "--max-age", "5"
    )
    assert await proc.wait() == 0
    os.utime(heartbeat, (0, 0))  # as if the worker had stopped beating long ago
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "threadline_agent.liveness", "--file", str(heartbeat), "--max-age", "5"
    )
    assert await proc.wait() == 1


async def test_runs_and_tokens_are_counted_on_the_metrics_port(worker: AgentWorker, nc: NatsClient) -> None:
    url = f"http://127.0.0.1:{worker.settings.metrics_port}/metrics"
    ok = RunRequested(run_id=uuid.uuid4().hex, thread_id="m1", tenant_id="acme", input="How are runs kept?")
    bad = RunRequested(run_id=uuid.uuid4().hex, thread_id="m2", tenant_id="acme", assistant_id="nope", input="Hi")
    for run in (ok, bad):
        await run_and_collect(nc, worker.topology, run)
    # The worker records a run's outcome and duration as it acks, just after the final event: poll briefly.
    async with httpx.AsyncClient() as client:
        for _ in range(50):
            text = (await client.get(url)).text
            if 'threadline_agent_run_duration_seconds_count{assistant="nope"} 1.0' in text:
                break
            await asyncio.sleep(0.1)
    assert 'threadline_agent_runs_total{assistant="agent",outcome="success"} 1.0' in text
    assert 'threadline_agent_runs_total{assistant="nope",outcome="assistant_not_found"} 1.0' in text
    assert 'threadline_agent_run_duration_seconds_count{assistant="agent"} 1.0' in text
    assert 'threadline_agent_tokens_total{direction="output",model="extractive-answerer"}' in text
    assert "threadline_agent_runs_in_flight 0.0" in text
