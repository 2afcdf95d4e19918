"""The planner (plan -> execute -> reflect -> synthesize) on a real worker, real NATS and a real retrieval
service: with the extractive answerer (rules decide) and with ChatOpenAI against a scripted model over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient
from threadline.events import RunConfig, RunRequested
from threadline.run_events import RunEvent
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.chat_models import chat_model
from threadline_agent.graphs.planner import question_parts
from threadline_agent.settings import AgentSettings

from tests.agent.conftest import running_worker
from tests.agent.openai_server import serve_openai
from tests.agent.patterns_server import USAGE, PatternModel, knowledge_base
from tests.agent.test_worker import run_and_collect

QUESTION = "Where is a run request kept, and what is 12 * 7?"


def ask(text: str, thread_id: str | None = None, **config: Any) -> RunRequested:
    return RunRequested(
        run_id=uuid.uuid4().hex,
        thread_id=thread_id or uuid.uuid4().hex,
        tenant_id="acme",
        assistant_id="planner",
        input=text,
        config=RunConfig(configurable=config),
    )


def custom(events: list[RunEvent]) -> list[dict[str, Any]]:
    return [e.data["value"] for e in events if e.kind == "custom"]


def test_the_offline_plan_is_the_questions_parts() -> None:
    assert question_parts(QUESTION) == ["Where is a run request kept", "what is 12 * 7?"]
    assert question_parts("How do workers scale? How are runs kept?") == ["How do workers scale?", "How are runs kept?"]
    assert question_parts("Why is the sky blue and green?") == ["Why is the sky blue and green?"]


async def test_offline_each_part_is_a_step_and_the_answer_cites_them(
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
        # A short follow-up on the thread is planned with the question it leans on.
        follow_up = [e for e, _ in await run_and_collect(nc, worker.topology, ask("And why is that?", thread))]
        # A part that found nothing relevant alone is searched again as the whole question; none when 0 are allowed.
        odd = "Where is a run request kept? And what about zebras?"
        retried = [e for e, _ in await run_and_collect(nc, worker.topology, ask(odd))]
        bounded = [e for e, _ in await run_and_collect(nc, worker.topology, ask(odd, max_reflections=0))]

    steps = custom(events)
    assert steps[0] == {"type": "plan", "steps": ["Where is a run request kept", "what is 12 * 7?"]}
    done = [s for s in steps if s["type"] == "step" and s["status"] == "done"]
    assert [(s["step"], s["tools"]) for s in done] == [(1, ["search_knowledge_base"]), (2, ["calculator"])]
    assert steps[-1] == {"type": "reflection", "round": 1, "added": []}
    calls = [e.data for e in events if e.kind == "tool_call"]
    assert [(c["name"], c["args"]) for c in calls] == [
        ("search_knowledge_base", {"query": "Where is a run request kept"}),
        ("calculator", {"expression": "12 * 7"}),
    ]
    end = events[-1].result()
    assert end.answer == "".join(e.data["text"] for e in events if e.kind == "token")
    assert "work queue" in end.answer and "[1]" in end.answer and end.answer.endswith("12 * 7 = 84.")
    assert [c.document_id for c in end.citations] == ["durability.md"]
    assert end.model == "extractive-answerer" and end.usage.approximate and end.usage.total_tokens > 0

    assert custom(follow_up)[0] == steps[0] and "[1]" in follow_up[-1].result().answer

    plan, *rest = custom(retried)
    assert plan["steps"] == ["Where is a run request kept?", "And what about zebras?"]
    assert {"type": "reflection", "round": 1, "added": [odd]} in rest
    assert [s["task"] for s in rest if s["type"] == "step" and s["status"] == "done"][-1] == odd
    assert "zebra" not in retried[-1].result().answer and "[1]" in retried[-1].result().answer

    assert [s["added"] for s in custom(bounded) if s["type"] == "reflection"] == []
    assert len([s for s in custom(bounded) if s["type"] == "step" and s["status"] == "done"]) == 2


async def test_a_chat_model_plans_reflects_and_writes_over_http(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    scripted = PatternModel(
        structured={
            "Plan": [{"steps": ["Where is a run request kept", "Compute 12 * 7"]}],
            "Reflection": [{"steps": ["How do workers scale"]}, {"steps": []}],
        },
        answer="Run requests wait in a work queue [1] and workers scale by sharing a consumer [2]; 12 * 7 = 84 [7].",
    )
    async with knowledge_base(tmp_path) as retrieval, serve_openai(scripted):
        model = chat_model(
            AgentSettings(OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test", OPENAI_MODEL="scripted")
        )
        async with running_worker(
            nats_namespace, nc, tmp_path, model, RETRIEVAL_TARGET=retrieval, AGENT_MEMORY_TOOLS=False
        ) as worker:
            events = [e for e, _ in await run_and_collect(nc, worker.topology, ask(QUESTION))]

    steps = custom(events)
    assert steps[0] == {"type": "plan", "steps": ["Where is a run request kept", "Compute 12 * 7"]}
    reflections = [s for s in steps if s["type"] == "reflection"]
    assert reflections == [
        {"type": "reflection", "round": 1, "added": ["How do workers scale"]},
        {"type": "reflection", "round": 2, "added": []},
    ]
    done = [s["task"] for s in steps if s["type"] == "step" and s["status"] == "done"]
    assert done == ["Where is a run request kept", "Compute 12 * 7", "How do workers scale"]
    assert [e.data["name"] for e in events if e.kind == "tool_call"] == [
        "search_knowledge_base",
        "calculator",
        "search_knowledge_base",
    ]
    end = events[-1].result()
    # The marker of a passage never given ([7]) is dropped; [1] and [2] number the passages the writer was shown.
    assert (
        end.answer == "Run requests wait in a work queue [1] and workers scale by sharing a consumer [2]; 12 * 7 = 84."
    )
    assert "".join(e.data["text"] for e in events if e.kind == "token").startswith("Run requests wait")
    assert end.citations[0].document_id == "durability.md" and "scaling.md" in {c.document_id for c in end.citations}
    # Every request's usage is the run's, those that left no message in the thread (plan, reflections) included.
    requests = scripted.requests
    assert end.usage.total_tokens == len(requests) * sum(USAGE.values()) and not end.usage.approximate

    # What the real client sent: the plan asked for as a forced tool call, then each step with the tools.
    plan_request = requests[0]
    assert plan_request["tool_choice"]["function"]["name"] == "Plan"
    assert plan_request["tools"][0]["function"]["parameters"]["required"] == ["steps"]
    step_request = requests[1]
    assert {t["function"]["name"] for t in step_request["tools"]} == {"search_knowledge_base", "calculator"}
    assert step_request["messages"][-1] == {"role": "user", "content": "Where is a run request kept"}
    written = requests[-1]
    assert "tools" not in written and "Passages of the knowledge base" in written["messages"][-1]["content"]
