"""The supervisor and its team (researcher, analyst, writer) on a real worker, real NATS and a real retrieval
service: with the extractive answerer (rules route) and with ChatOpenAI against a scripted model over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline.run_events import RunEvent
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.chat_models import chat_model
from threadline_agent.graphs.supervisor import MAX_HANDOFFS, route_by_rules
from threadline_agent.settings import AgentSettings

from tests.agent.conftest import running_worker
from tests.agent.openai_server import serve_openai
from tests.agent.patterns_server import USAGE, PatternModel, knowledge_base
from tests.agent.test_worker import run_and_collect

QUESTION = "Where is a run request kept, and what is 12 * 7?"
TEAM = ("researcher", "analyst")


def ask(text: str, thread_id: str | None = None) -> RunRequested:
    return RunRequested(
        run_id=uuid.uuid4().hex,
        thread_id=thread_id or uuid.uuid4().hex,
        tenant_id="acme",
        assistant_id="supervisor",
        input=text,
    )


def custom(events: list[RunEvent], kind: str) -> list[dict[str, Any]]:
    return [e.data["value"] for e in events if e.kind == "custom" and e.data["value"]["type"] == kind]


def test_offline_routing_hires_who_the_question_needs() -> None:
    assert route_by_rules(QUESTION, [], TEAM) == ("researcher", QUESTION)
    assert route_by_rules("What is 12 * 7?", [], TEAM) == ("analyst", "Compute 12 * 7")
    assert route_by_rules("Where is a run request kept?", [], ("analyst",)) == ("writer", "")


async def test_offline_the_team_hands_off_and_the_writer_cites_the_findings(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    async with (
        knowledge_base(tmp_path) as retrieval,
        running_worker(
            nats_namespace, nc, tmp_path, ExtractiveAnswerer(), RETRIEVAL_TARGET=retrieval, AGENT_MEMORY_TOOLS=False
        ) as worker,
    ):
        thread = uuid.uuid4().hex
        events = [e for e, _ in await run_and_collect(nc, worker.topology, ask(QUESTION, thread))]
        # The next question on the thread is new work: the team starts afresh, not from the last findings.
        again = [e for e, _ in await run_and_collect(nc, worker.topology, ask("What is 6 * 7?", thread))]

    assert [h["to"] for h in custom(events, "handoff")] == ["researcher", "analyst", "writer"]
    assert [(s["agent"], s["tools"]) for s in custom(events, "step")] == [
        ("researcher", ["search_knowledge_base"]),
        ("analyst", ["calculator"]),
    ]
    calls = [(e.data["name"], e.data["args"]) for e in events if e.kind == "tool_call"]
    assert calls == [("search_knowledge_base", {"query": QUESTION}), ("calculator", {"expression": "12 * 7"})]
    end = events[-1].result()
    assert end.answer == "".join(e.data["text"] for e in events if e.kind == "token")
    assert "acknowledges it [1]" in end.answer and end.answer.endswith("12 * 7 = 84.")
    assert [c.document_id for c in end.citations] == ["durability.md"]

    assert [h["to"] for h in custom(again, "handoff")] == ["analyst", "writer"]
    assert again[-1].result().answer == "6 * 7 = 42." and again[-1].result().citations == []


async def test_a_chat_model_supervises_over_http_within_its_bound(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    routes = [
        {"next": "researcher", "task": "Where is a run request kept"},
        {"next": "analyst", "task": "Compute 12 * 7"},
        {"next": "writer", "task": ""},
        # The second question: a supervisor that never hands to the writer is stopped after MAX_HANDOFFS.
        *[{"next": "analyst", "task": "Compute 6 * 7"}] * MAX_HANDOFFS,
    ]
    scripted = PatternModel(structured={"Route": routes}, answer="Run requests wait in a work queue [1]; it is 84.")
    async with knowledge_base(tmp_path) as retrieval, serve_openai(scripted):
        model = chat_model(
            AgentSettings(OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test", OPENAI_MODEL="scripted")
        )
        async with running_worker(
            nats_namespace, nc, tmp_path, model, RETRIEVAL_TARGET=retrieval, AGENT_MEMORY_TOOLS=False
        ) as worker:
            events = [e for e, _ in await run_and_collect(nc, worker.topology, ask(QUESTION))]
            first = len(scripted.requests)
            looping = [e for e, _ in await run_and_collect(nc, worker.topology, ask("What is 6 * 7?"))]

    assert [(h["to"], h["task"]) for h in custom(events, "handoff")] == [
        ("researcher", "Where is a run request kept"),
        ("analyst", "Compute 12 * 7"),
        ("writer", ""),
    ]
    end = events[-1].result()
    assert end.answer == "Run requests wait in a work queue [1]; it is 84."
    assert end.citations[0].document_id == "durability.md"
    assert end.usage.total_tokens == first * sum(USAGE.values())
    requests = scripted.requests
    # Each agent is offered its own tool only; the supervisor's route is a forced call of Route.
    assert requests[0]["tool_choice"]["function"]["name"] == "Route"
    assert [t["function"]["name"] for t in requests[1]["tools"]] == ["search_knowledge_base"]
    assert [t["function"]["name"] for t in requests[4]["tools"]] == ["calculator"]
    assert (
        "Findings so far:\n- researcher, Where is a run request kept: Found:" in requests[3]["messages"][-1]["content"]
    )

    handoffs = [h["to"] for h in custom(looping, "handoff")]
    assert handoffs == ["analyst"] * MAX_HANDOFFS + ["writer"]
    assert looping[-1].kind == "end" and looping[-1].result().answer
