"""The pattern assistants through the whole mesh: the planner (plan -> execute -> reflect -> synthesize) and the
supervisor with its team, asked over /api/v1/query and streamed over /api/v1/runs/stream, with the offline
answerer; their steps are custom events of the stream and node spans of the trace."""

from __future__ import annotations

import os
import time

import httpx

from tests.e2e.conftest import Mesh
from tests.e2e.otlp_receiver import ReceivedSpan
from tests.e2e.run_events import check_run_order, read_frames
from tests.gateway.sse_client import Frame


def _query(client: httpx.Client, assistant: str, question: str, trace_id: str) -> dict:
    traceparent = f"00-{trace_id}-{os.urandom(8).hex()}-01"
    reply = client.post(
        "/api/v1/query", json={"input": question, "assistant_id": assistant}, headers={"traceparent": traceparent}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def _stream(client: httpx.Client, assistant: str, question: str) -> list[Frame]:
    with client.stream("POST", "/api/v1/runs/stream", json={"input": question, "assistant_id": assistant}) as reply:
        assert reply.status_code == 200, reply.read()
        got = read_frames(reply)
    check_run_order([(int(f.id), f.event) for f in got])
    return got


def _agent_spans(mesh: Mesh, trace_id: str, last: str, timeout: float = 20.0) -> list[ReceivedSpan]:
    """The agent's spans of the trace, once the span of the graph's ``last`` node has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = [s for s in mesh.otlp.trace(trace_id) if s.service == "agent"]
        if any(s.name == last for s in spans):
            return spans
        time.sleep(0.2)
    return [s for s in mesh.otlp.trace(trace_id) if s.service == "agent"]


def _under(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[str]:
    """The names of the spans directly under ``span``."""
    return [s.name for s in spans if s.parent_span_id == span.span_id]


def _custom(frames: list[Frame]) -> list[dict]:
    return [f.data["value"] for f in frames if f.event == "custom"]


def test_the_planner_answers_each_part_with_a_span_per_step(client: httpx.Client, mesh: Mesh) -> None:
    trace_id = os.urandom(16).hex()
    body = _query(client, "planner", "How are runs kept durable, and what is 12 * 7?", trace_id)

    assert body["assistant_id"] == "planner" and "[1]" in body["answer"] and "12 * 7 = 84" in body["answer"]
    assert body["citations"] and all(c["text"].strip() for c in body["citations"])
    spans = _agent_spans(mesh, trace_id, "node synthesize")
    names = [s.name for s in spans]
    assert {"node plan", "node reflect", "node synthesize"} <= set(names), names
    steps = [s for s in spans if s.name == "node execute"]
    assert len(steps) == 2 and len({s.attributes["langgraph.step"] for s in steps}) == 2
    assert sorted(n for s in steps for n in _under(s, spans) if n.startswith("tool ")) == [
        "tool calculator",
        "tool search_knowledge_base",
    ]


def test_the_planner_streams_its_plan_and_each_step(client: httpx.Client) -> None:
    got = _stream(client, "planner", "How does a worker scale out? What is 6 * 7?")

    plan, *rest = _custom(got)
    assert plan == {"type": "plan", "steps": ["How does a worker scale out?", "What is 6 * 7?"]}
    done = [(s["step"], s["tools"]) for s in rest if s["type"] == "step" and s["status"] == "done"]
    assert done == [(1, ["search_knowledge_base"]), (2, ["calculator"])]
    assert any(s["type"] == "reflection" for s in rest)
    kinds = [f.event for f in got]
    # Each step's tool calls come after the plan, the answer's tokens after every step.
    assert kinds.index("custom") < kinds.index("tool_call") < kinds.index("token")
    assert max(n for n, k in enumerate(kinds) if k == "custom") < kinds.index("token")
    end = got[-1].data
    assert end["answer"] == "".join(f.data["text"] for f in got if f.event == "token")
    assert "[1]" in end["answer"] and "6 * 7 = 42" in end["answer"]
    assert end["citations"] == next(f.data["citations"] for f in got if f.event == "citations")


def test_the_supervisor_hands_off_to_its_team_with_a_span_per_agent(client: httpx.Client, mesh: Mesh) -> None:
    trace_id = os.urandom(16).hex()
    body = _query(client, "supervisor", "Where is a run's checkpoint stored, and what is 3 * 14?", trace_id)

    assert body["assistant_id"] == "supervisor" and "[1]" in body["answer"] and "3 * 14 = 42" in body["answer"]
    assert body["citations"]
    spans = _agent_spans(mesh, trace_id, "node writer")
    names = [s.name for s in spans]
    assert names.count("node supervisor") == 3, names
    researcher, analyst = (next(s for s in spans if s.name == f"node {a}") for a in ("researcher", "analyst"))
    assert "tool search_knowledge_base" in _under(researcher, spans)
    assert "tool calculator" in _under(analyst, spans)


def test_the_supervisor_streams_each_handoff(client: httpx.Client) -> None:
    got = _stream(client, "supervisor", "How are tenants kept apart?")

    events = _custom(got)
    assert [e["to"] for e in events if e["type"] == "handoff"] == ["researcher", "writer"]
    assert [(e["agent"], e["tools"]) for e in events if e["type"] == "step"] == [
        ("researcher", ["search_knowledge_base"])
    ]
    end = got[-1].data
    assert "[1]" in end["answer"] and end["citations"]
