"""Conversations through the gateway: created, listed, their state and history from the memory service, erased."""

from __future__ import annotations

import uuid

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


def test_threads_are_created_listed_by_metadata_and_paged(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex
    made = [client.post("/api/v1/threads", json={"metadata": {"tag": tag, "n": n}}) for n in range(3)]
    assert [r.status_code for r in made] == [201] * 3, made[0].text
    ids = [r.json()["thread_id"] for r in made]
    assert made[0].json()["status"] == "idle"
    again = client.post("/api/v1/threads", json={"thread_id": ids[0]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "thread_exists"

    asked = client.post("/api/v1/query", json={"input": "What is 6 * 7?", "thread_id": ids[0]})
    assert asked.status_code == 200, asked.text
    tagged = {"metadata": {"tag": tag}}
    newest_first = client.post("/api/v1/threads/search", json=tagged).json()
    assert [t["thread_id"] for t in newest_first["threads"]] == [ids[0], ids[2], ids[1]]
    assert newest_first["next_offset"] is None

    first = client.post(
        "/api/v1/threads/search", json={**tagged, "limit": 2, "sort_by": "created_at", "sort_order": "asc"}
    )
    assert [t["thread_id"] for t in first.json()["threads"]] == ids[:2] and first.json()["next_offset"] == 2
    rest = client.post("/api/v1/threads/search", json={**tagged, "limit": 2, "offset": 2, "sort_by": "created_at"})
    assert rest.json()["next_offset"] is None
    one = client.post("/api/v1/threads/search", json={"metadata": {"tag": tag, "n": 1}}).json()["threads"]
    assert [t["thread_id"] for t in one] == [ids[1]] and one[0]["metadata"] == {"tag": tag, "n": 1}
    assert ids[0] in {t["thread_id"] for t in client.get("/api/v1/threads", params={"limit": 500}).json()["threads"]}

    assert client.get(f"/api/v1/threads/{ids[2]}").json()["metadata"]["n"] == 2
    bad = client.post("/api/v1/threads/search", json={"metadata": [1, 2]})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["fields"][0]["field"] == "metadata"
    assert client.delete(f"/api/v1/threads/{ids[1]}").status_code == 204
    assert client.get(f"/api/v1/threads/{ids[1]}").status_code == 404
