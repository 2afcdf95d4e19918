"""A conversation's state and history through the gateway, read from the memory service, then erased."""

from __future__ import annotations

import httpx


def test_a_thread_shows_its_messages_and_history_and_can_be_deleted(client: httpx.Client) -> None:
    first = client.post("/api/v1/query", json={"input": "How are runs kept durable?"})
    assert first.status_code == 200, first.text
    thread_id = first.json()["thread_id"]
    second = client.post("/api/v1/query", json={"input": "What is 6 * 7?", "thread_id": thread_id})
    assert second.status_code == 200, second.text

    state = client.get(f"/api/v1/threads/{thread_id}/state")
    assert state.status_code == 200, state.text
    messages = state.json()["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"] * 2
    assert messages[0]["content"] == "How are runs kept durable?"
    assert messages[3]["content"] == first.json()["answer"]
    assert messages[5]["tool_calls"][0]["name"] == "calculator" and messages[7]["content"] == "6 * 7 = 42"
    assert state.json()["metadata"]["run_id"] == second.json()["run_id"]

    history = client.get(f"/api/v1/threads/{thread_id}/history", params={"limit": 3}).json()
    assert len(history) == 3 and history[0]["checkpoint_id"] == state.json()["checkpoint_id"]
    assert [h["parent_checkpoint_id"] for h in history[:2]] == [h["checkpoint_id"] for h in history[1:]]
    older = client.get(
        f"/api/v1/threads/{thread_id}/history", params={"limit": 100, "before": history[-1]["checkpoint_id"]}
    ).json()
    assert older and all(h["checkpoint_id"] < history[-1]["checkpoint_id"] for h in older)
    assert len(older[-1]["values"].get("messages", [])) == 0  # the thread's first checkpoint holds no message yet

    assert client.delete(f"/api/v1/threads/{thread_id}").status_code == 204
    assert client.get(f"/api/v1/threads/{thread_id}/state").json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/threads/{thread_id}/history").status_code == 404
    assert client.delete(f"/api/v1/threads/{thread_id}").status_code == 404


def test_an_unknown_or_malformed_thread_is_a_clear_error(client: httpx.Client) -> None:
    assert client.get("/api/v1/threads/never-was/state").status_code == 404
    assert client.get("/api/v1/threads/..%2Fetc/state").status_code in (404, 422)
    assert client.get("/api/v1/threads/ok/history", params={"limit": 0}).status_code == 422
