"""Human in the loop over the real worker, NATS and memory service: a tool call waits for approval, then a
run carrying the decision goes on from the checkpoint the memory service kept."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline.run_events import RunEvent
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.approval import parse_decision
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.agent_worker import AgentWorker

from tests.agent.conftest import running_worker
from tests.agent.test_worker import run_and_collect

QUESTION = "What is 12 * 7?"


def start_worker(namespace: str, nc: NatsClient, tmp_path: Path, memory_target: str, saver: RemoteCheckpointSaver):
    return running_worker(
        namespace, nc, tmp_path, ExtractiveAnswerer(), checkpointer=saver, AGENT_APPROVAL_TOOLS="calculator"
    )


async def ask(nc: NatsClient, worker: AgentWorker, thread: str, text: str = "", **fields: Any) -> list[RunEvent]:
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id=thread, tenant_id="acme", input=text, **fields)
    return [event for event, _ in await run_and_collect(nc, worker.topology, run)]


def of(events: list[RunEvent], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == kind]


async def interrupted(nc: NatsClient, worker: AgentWorker, thread: str) -> dict[str, Any]:
    """Ask a question whose calculator call needs approval; returns the end event's data."""
    events = await ask(nc, worker, thread, QUESTION)
    assert [e.kind for e in events] == ["metadata", "tool_call", "interrupt", "end"]
    end = events[-1].data
    assert end["status"] == "interrupted"
    assert of(events, "interrupt")[0]["interrupts"] == end["interrupts"]
    return end


async def test_an_approved_call_runs_after_the_worker_that_stopped_is_gone(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, memory_target: str
) -> None:
    thread = uuid.uuid4().hex
    saver = RemoteCheckpointSaver(target=memory_target)
    async with start_worker(nats_namespace, nc, tmp_path, memory_target, saver) as worker:
        end = await interrupted(nc, worker, thread)
    await saver.close()
    [waiting] = end["interrupts"]
    assert waiting["type"] == "tool_approval"
    assert (waiting["name"], waiting["args"]) == ("calculator", {"expression": "12 * 7"})
    assert set(waiting["actions"]) == {"approve", "reject", "edit"}
    assert end["answer"] == "" and end["citations"] == []

    # Another worker, with nothing of the first in memory: the place is in the memory service.
    saver = RemoteCheckpointSaver(target=memory_target)
    async with start_worker(nats_namespace, nc, tmp_path, memory_target, saver) as worker:
        events = await ask(nc, worker, thread, resume={"action": "approve"})
    await saver.close()
    end = events[-1].data
    assert events[-1].kind == "end" and end["status"] == "success"
    assert end["answer"] == "12 * 7 = 84"
    assert of(events, "tool_call")[0]["id"] == waiting["tool_call_id"]
    assert [(r["name"], r["status"]) for r in of(events, "tool_result")] == [("calculator", "success")]


async def test_reject_edit_and_wrong_resumes(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, memory_target: str
) -> None:
    saver = RemoteCheckpointSaver(target=memory_target)
    async with start_worker(nats_namespace, nc, tmp_path, memory_target, saver) as worker:
        # Rejected: the tool never runs, and the answer says why.
        thread = uuid.uuid4().hex
        await interrupted(nc, worker, thread)
        events = await ask(nc, worker, thread, resume={"action": "reject", "reason": "not now"})
        end = events[-1].data
        assert end["status"] == "success"
        assert end["answer"] == "The calculator call was declined by the user (not now), so it did not run."
        assert "84" not in end["answer"]
        assert [(r["name"], r["status"], r.get("rejected")) for r in of(events, "tool_result")] == [
            ("calculator", "error", True)
        ]

        # Edited: the tool runs with the person's arguments.
        thread = uuid.uuid4().hex
        await interrupted(nc, worker, thread)
        events = await ask(nc, worker, thread, resume={"action": "edit", "args": {"expression": "2 + 2"}})
        assert events[-1].data["answer"] == "2 + 2 = 4"
        assert of(events, "tool_call")[0]["args"] == {"expression": "2 + 2"}

        # A malformed decision fails the run and leaves the thread waiting; a good one then goes on.
        thread = uuid.uuid4().hex
        await interrupted(nc, worker, thread)
        events = await ask(nc, worker, thread, resume={"action": "edit"})
        assert (events[-1].kind, events[-1].data["code"]) == ("error", "invalid_input")
        events = await ask(nc, worker, thread, resume={"action": "approve"})
        assert events[-1].data["answer"] == "12 * 7 = 84"

        # Nothing waits any more: a decision has nothing to decide.
        events = await ask(nc, worker, thread, resume={"action": "approve"})
        assert (events[-1].kind, events[-1].data["code"]) == ("error", "nothing_to_resume")

        # The thread goes on as usual afterwards.
        events = await ask(nc, worker, thread, "What is 3 * 3?")
        assert events[-1].data["status"] == "interrupted"
    await saver.close()


async def test_a_refused_search_is_not_a_knowledge_base_outage(
    nats_namespace: str, nc: NatsClient, tmp_path: Path, memory_target: str
) -> None:
    saver = RemoteCheckpointSaver(target=memory_target)
    async with running_worker(
        nats_namespace,
        nc,
        tmp_path,
        ExtractiveAnswerer(),
        checkpointer=saver,
        AGENT_APPROVAL_TOOLS="search_knowledge_base",
    ) as worker:
        thread = uuid.uuid4().hex
        events = await ask(nc, worker, thread, "How are runs kept?")
        assert events[-1].data["status"] == "interrupted"
        assert events[-1].data["interrupts"][0]["name"] == "search_knowledge_base"
        events = await ask(nc, worker, thread, resume={"action": "reject"})
    await saver.close()
    end = events[-1].data
    assert end["knowledge_base_unavailable"] is False
    assert end["answer"] == "The search_knowledge_base call was declined by the user, so it did not run."


def test_decisions_are_checked() -> None:
    assert parse_decision({"action": "approve"}).action == "approve"
    assert parse_decision({"action": "edit", "args": {"x": 1}}).args == {"x": 1}
    for bad in ({"action": "maybe"}, {"action": "edit"}, {"action": "approve", "extra": 1}, "approve", None):
        with pytest.raises(ValueError, match="Not a decision"):
            parse_decision(bad)


def test_approval_tools_come_from_a_comma_separated_list() -> None:
    settings = AgentSettings(AGENT_APPROVAL_TOOLS=" calculator, send_email ,")
    assert settings.approval_tools == frozenset({"calculator", "send_email"})
    assert AgentSettings().approval_tools == frozenset()
