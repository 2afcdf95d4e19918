"""Cancelling a run over the real NATS: while a worker is on it, or before any worker has taken it."""

from __future__ import annotations

import asyncio
import uuid

from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested, Topology
from threadline.nats import cancelled_runs
from threadline.run_events import RunEvent
from threadline_agent.worker.agent_worker import AgentWorker

from tests.agent.test_worker import run_and_collect, runs_left


async def cancel(nc: NatsClient, topology: Topology, run_id: str) -> None:
    """What the gateway's POST /api/v1/runs/{id}/cancel does."""
    await (await cancelled_runs(nc.jetstream(), topology)).put(run_id, b"1")
    await nc.publish(topology.run_cancel(run_id), b"")


async def test_a_running_run_stops_with_one_cancelled_event(slow_worker: AgentWorker, nc: NatsClient) -> None:
    topology = slow_worker.topology
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id="t-cancel", tenant_id="acme", input="How are runs kept?")
    answering = asyncio.Event()

    async def on_event(msg) -> None:
        if RunEvent.model_validate_json(msg.data).kind == "token":
            answering.set()

    watch = await nc.subscribe(topology.run_events(run.run_id), cb=on_event)
    collecting = asyncio.create_task(run_and_collect(nc, topology, run))
    await asyncio.wait_for(answering.wait(), 30)  # tokens flow: the graph is mid-answer
    await cancel(nc, topology, run.run_id)
    events = [event for event, _ in await collecting]

    assert [e.kind for e in events][-1] == "error" and events[-1].data["code"] == "cancelled"
    assert sum(e.is_final for e in events) == 1
    assert not any(e.kind == "citations" for e in events)
    assert await runs_left(nc, topology) == 0
    await watch.unsubscribe()


async def test_a_queued_run_is_cancelled_before_it_starts(slow_worker: AgentWorker, nc: NatsClient) -> None:
    topology = slow_worker.topology
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id="t-queued", tenant_id="acme", input="How are runs kept?")
    await cancel(nc, topology, run.run_id)
    events = [event for event, _ in await run_and_collect(nc, topology, run)]
    assert [e.kind for e in events] == ["metadata", "error"] and events[-1].data["code"] == "cancelled"
