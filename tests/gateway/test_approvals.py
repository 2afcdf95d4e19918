"""A run that waits for a person's decision, over HTTP on real NATS with no agent: the decision a
client sends is what reaches the agents, and an interrupted run reads as such.

How the agent interrupts and resumes is tests/agent/test_approval.py.
"""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.gateway.conftest import publish_events
from tests.gateway.test_multitask import _submitted

WAITING = {"id": "i-1", "tool_call_id": "call-1", "name": "calculator", "args": {"expression": "6*7"}}


def test_a_decision_travels_to_the_agents_with_its_thread(gateway: TestClient, nats_namespace: str) -> None:
    thread_id = f"t-{uuid.uuid4().hex[:8]}"
    reply = gateway.post("/api/v1/runs", json={"thread_id": thread_id, "resume": {"action": "approve"}})
    assert reply.status_code == 202, reply.text
    sent = _submitted(nats_namespace)[reply.json()["run_id"]]
    assert (sent.thread_id, sent.input, sent.resume) == (thread_id, "", {"action": "approve"})

    edit = {"action": "edit", "args": {"expression": "6*8"}}
    edited = gateway.post("/api/v1/runs", json={"thread_id": f"{thread_id}-2", "resume": edit})
    assert _submitted(nats_namespace)[edited.json()["run_id"]].resume == edit


def test_a_malformed_decision_is_a_422_naming_the_field(gateway: TestClient) -> None:
    cases = [
        ({"resume": {"action": "approve"}}, "thread_id"),  # a decision for which thread?
        ({"thread_id": "t", "resume": {"action": "edit"}}, "resume"),
        ({"thread_id": "t", "resume": {"action": "shrug"}}, "resume.action"),
        ({"thread_id": "t"}, "input"),
    ]
    for body, field in cases:
        reply = gateway.post("/api/v1/runs", json=body)
        assert reply.status_code == 422, reply.text
        assert field in [f["field"] for f in reply.json()["error"]["details"]["fields"]], reply.text


def test_an_interrupted_run_says_what_waits_for_a_decision(gateway: TestClient, nats_namespace: str) -> None:
    started = gateway.post("/api/v1/runs", json={"input": "What is 6 * 7?"}).json()
    run_id = started["run_id"]
    run = {"run_id": run_id, "thread_id": started["thread_id"], "assistant_id": "agent"}
    publish_events(
        nats_namespace,
        run_id,
        [
            (0, "metadata", run),
            (1, "interrupt", {"interrupts": [WAITING]}),
            (2, "end", {**run, "answer": "", "citations": [], "status": "interrupted", "interrupts": [WAITING]}),
        ],
    )

    assert gateway.get(f"/api/v1/runs/{run_id}").json()["status"] == "interrupted"
    outcome = gateway.get(f"/api/v1/runs/{run_id}/wait").json()
    assert (outcome["status"], outcome["interrupts"]) == ("interrupted", [WAITING])
    # The thread is free for the decision (or a new question): nothing runs on it.
    resumed = gateway.post("/api/v1/runs", json={"thread_id": started["thread_id"], "resume": {"action": "reject"}})
    assert resumed.status_code == 202, resumed.text
