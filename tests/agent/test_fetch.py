"""How a worker takes runs off its graph's consumer: a free slot takes the next run at once.

Before, a worker fetched runs in batches of AGENT_CONCURRENCY with faststream over nats-py's
``fetch``: a batch's slowest run held the next fetch, and after an idle pause a stale 408 left an
orphan pull request behind on which the next run waited up to AGENT_FETCH_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from nats.aio.client import Client as NatsClient
from pydantic import Field
from threadline.events import RunRequested, Topology
from threadline_agent.graphs.answerer import ExtractiveAnswerer

from tests.agent.conftest import running_worker
from tests.agent.test_graph_pools import final_event

HOLD = "hold"  # a question with this word waits for the test's gate


class GatedAnswerer(ExtractiveAnswerer):
    """Answers at once, except a question saying HOLD, which waits until the test opens the gate."""

    gate: asyncio.Event = Field(default_factory=asyncio.Event)

    async def _astream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        question = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        if HOLD in question:
            await self.gate.wait()
        async for chunk in super()._astream(messages, *args, **kwargs):
            yield chunk


async def submit(nc: NatsClient, topology: Topology, question: str = "How are runs kept durable?") -> RunRequested:
    run = RunRequested(
        run_id=uuid.uuid4().hex, thread_id=uuid.uuid4().hex, tenant_id="acme", assistant_id="agent", input=question
    )
    await nc.jetstream().publish(topology.runs_requested_for(run.graph_id), run.to_bytes())
    return run


async def test_a_slow_run_does_not_hold_the_runs_after_it(nats_namespace: str, nc: NatsClient, tmp_path: Path) -> None:
    """With one of two slots held by a run that cannot end yet, the other slot keeps taking runs one after another.

    The fetch timeout is 30 s so that a run taken only when a pull request expires would not end within the
    20 s each run is given here (a bound on being stalled, not on speed).
    """
    model = GatedAnswerer()
    async with running_worker(
        nats_namespace, nc, tmp_path, model, AGENT_CONCURRENCY="2", AGENT_FETCH_TIMEOUT_S="30"
    ) as worker:
        held = await submit(nc, worker.topology, f"Please {HOLD}: how are runs kept durable?")
        for _ in range(3):
            run = await submit(nc, worker.topology)
            assert (await final_event(nc, worker.topology, run.run_id, timeout_s=20)).kind == "end"
        assert not model.gate.is_set()  # the held run was in flight all along
        model.gate.set()
        assert (await final_event(nc, worker.topology, held.run_id, timeout_s=20)).kind == "end"


async def test_an_idle_worker_keeps_one_pull_request_open_and_takes_runs_after_it(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    """Idle through many expiries of its pull request, a worker never leaves a second (orphan) request open.

    An orphan request was what delivered the next run to a fetch that then waited for the rest of its batch.
    """
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), AGENT_CONCURRENCY="8", AGENT_FETCH_TIMEOUT_S="0.2"
    ) as worker:
        js = nc.jetstream()
        waiting = []
        for _ in range(40):  # about 20 expiries of the worker's pull request
            info = await js.consumer_info(worker.topology.runs_stream, worker.topology.runs_consumer_for("agent"))
            waiting.append(info.num_waiting)
            await asyncio.sleep(0.1)
        assert max(waiting) == 1, waiting
        for _ in range(3):
            run = await submit(nc, worker.topology)
            assert (await final_event(nc, worker.topology, run.run_id, timeout_s=20)).kind == "end"
