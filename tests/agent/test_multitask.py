"""A second run on a busy thread, as the gateway's multitask strategies send it, worked by a real worker.

``enqueue`` sends the run with ``after_run_id``; ``interrupt`` cancels the earlier run and does the
same; ``rollback`` also sets ``rollback_run_id``, so the new run starts from the state before it.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from langchain_core.messages import HumanMessage
from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline.run_events import RunEvent
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.worker.agent_worker import AgentWorker

from tests.agent.conftest import SlowAnswerer, running_worker
from tests.agent.test_cancel import cancel
from tests.agent.test_worker import run_and_collect


def _run(thread_id: str, text: str, tenant: str = "acme", **kwargs: str) -> RunRequested:
    return RunRequested(run_id=uuid.uuid4().hex, thread_id=thread_id, tenant_id=tenant, input=text, **kwargs)


async def _questions(worker: AgentWorker, thread_id: str, tenant: str = "acme") -> list[str]:
    state = await worker.graphs["agent"].aget_state({"configurable": {"thread_id": thread_id, "tenant_id": tenant}})
    return [m.text for m in state.values.get("messages", []) if isinstance(m, HumanMessage)]


async def _first_token(nc: NatsClient, worker: AgentWorker, run_id: str) -> asyncio.Event:
    answering = asyncio.Event()

    async def on_event(msg) -> None:
        if RunEvent.model_validate_json(msg.data).kind == "token":
            answering.set()

    await nc.subscribe(worker.topology.run_events(run_id), cb=on_event)
    return answering


async def test_an_enqueued_run_starts_once_the_earlier_one_has_ended(slow_worker: AgentWorker, nc: NatsClient) -> None:
    first = _run("t-enqueue", "How are runs kept?")
    second = _run("t-enqueue", "And how are they cancelled?", after_run_id=first.run_id)
    order: list[tuple[str, str]] = []

    async def on_event(msg) -> None:
        event = RunEvent.model_validate_json(msg.data)
        order.append((event.run_id, event.kind))

    await nc.subscribe(slow_worker.topology.run_events_wildcard, cb=on_event)
    # The second is submitted first: it still waits for the first, which a worker takes meanwhile.
    later = asyncio.create_task(run_and_collect(nc, slow_worker.topology, second))
    await asyncio.sleep(0.3)
    await run_and_collect(nc, slow_worker.topology, first)
    events = [e for e, _ in await later]

    assert events[-1].kind == "end"
    assert order.index((second.run_id, "metadata")) > order.index((first.run_id, "end"))
    assert await _questions(slow_worker, "t-enqueue") == [first.input, second.input]


async def test_interrupt_cancels_the_earlier_run_and_keeps_its_question(
    slow_worker: AgentWorker, nc: NatsClient
) -> None:
    done = _run("t-interrupt", "How are runs kept?")
    await run_and_collect(nc, slow_worker.topology, done)
    busy = _run("t-interrupt", "What is a thread?")
    answering = await _first_token(nc, slow_worker, busy.run_id)
    busy_events = asyncio.create_task(run_and_collect(nc, slow_worker.topology, busy))
    await asyncio.wait_for(answering.wait(), 30)

    await cancel(nc, slow_worker.topology, busy.run_id)  # what the gateway does for interrupt
    after = _run("t-interrupt", "How are runs cancelled?", after_run_id=busy.run_id)
    events = [e for e, _ in await run_and_collect(nc, slow_worker.topology, after)]

    assert (await busy_events)[-1][0].data["code"] == "cancelled"
    assert events[-1].kind == "end"
    assert await _questions(slow_worker, "t-interrupt") == [done.input, busy.input, after.input]


async def test_rollback_starts_from_the_state_before_the_cancelled_run(
    slow_worker: AgentWorker, nc: NatsClient
) -> None:
    done = _run("t-rollback", "How are runs kept?")
    await run_and_collect(nc, slow_worker.topology, done)
    busy = _run("t-rollback", "What is a thread?")
    answering = await _first_token(nc, slow_worker, busy.run_id)
    busy_events = asyncio.create_task(run_and_collect(nc, slow_worker.topology, busy))
    await asyncio.wait_for(answering.wait(), 30)

    await cancel(nc, slow_worker.topology, busy.run_id)
    after = _run("t-rollback", "How are runs cancelled?", after_run_id=busy.run_id, rollback_run_id=busy.run_id)
    events = [e for e, _ in await run_and_collect(nc, slow_worker.topology, after)]

    assert (await busy_events)[-1][0].data["code"] == "cancelled"
    assert events[-1].kind == "end"
    assert await _questions(slow_worker, "t-rollback") == [done.input, after.input]


async def test_rollback_of_a_thread_s_only_run_starts_the_thread_afresh(
    slow_worker: AgentWorker, nc: NatsClient
) -> None:
    busy = _run("t-rollback-new", "What is a thread?")
    answering = await _first_token(nc, slow_worker, busy.run_id)
    busy_events = asyncio.create_task(run_and_collect(nc, slow_worker.topology, busy))
    await asyncio.wait_for(answering.wait(), 30)

    await cancel(nc, slow_worker.topology, busy.run_id)
    after = _run("t-rollback-new", "How are runs kept?", after_run_id=busy.run_id, rollback_run_id=busy.run_id)
    await run_and_collect(nc, slow_worker.topology, after)

    await busy_events
    assert await _questions(slow_worker, "t-rollback-new") == [after.input]


async def test_rollback_in_the_memory_service_deletes_only_the_runs_tenants_thread(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, memory_target: str
) -> None:
    """The thread's checkpoints go in the run's tenant; another tenant's thread of the same id stays whole."""
    saver = RemoteCheckpointSaver(target=memory_target)  # bound to no tenant, as the worker's is
    async with running_worker(nats_namespace, nc, tmp_path, SlowAnswerer(), checkpointer=saver) as worker:
        elsewhere = _run("t-shared", "How are runs kept?", tenant="globex")
        await run_and_collect(nc, worker.topology, elsewhere)
        busy = _run("t-shared", "What is a thread?")
        answering = await _first_token(nc, worker, busy.run_id)
        busy_events = asyncio.create_task(run_and_collect(nc, worker.topology, busy))
        await asyncio.wait_for(answering.wait(), 30)

        await cancel(nc, worker.topology, busy.run_id)
        after = _run("t-shared", "How are runs cancelled?", after_run_id=busy.run_id, rollback_run_id=busy.run_id)
        events = [e for e, _ in await run_and_collect(nc, worker.topology, after)]

        assert (await busy_events)[-1][0].data["code"] == "cancelled"
        assert events[-1].kind == "end"
        assert await _questions(worker, "t-shared") == [after.input]
        assert await _questions(worker, "t-shared", tenant="globex") == [elsewhere.input]
    await saver.close()
