"""The OpenAI-compatible surface as the real ``openai`` client sees it: models, auth, validation (no run started).

Whole chat completions, which need an agent, are in tests/e2e/test_openai_compat.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import openai
import pytest
from fastapi.testclient import TestClient
from threadline_gateway import apikeys
from threadline_gateway.chat_threads import conversation_key


def client_for(gateway: TestClient, api_key: str = "unused") -> openai.OpenAI:
    # The gateway's TestClient is an httpx.Client: the official client speaks to the app through it.
    return openai.OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=gateway, max_retries=0)


def test_each_assistant_is_a_model(make_gateway: Callable[..., TestClient], memory_target: str) -> None:
    tenant = f"models-{uuid.uuid4().hex[:8]}"
    gateway = make_gateway(MEMORY_TARGET=memory_target, GATEWAY_DEFAULT_TENANT=tenant)
    mine = gateway.post("/api/v1/assistants", json={"graph_id": "research", "name": "Researcher"}).json()
    client = client_for(gateway)
    models = {m.id: m for m in client.models.list().data}
    # The graphs' default assistants by the graph's name, the tenant's own by its id (the newest, last).
    assert {"agent", "research", mine["assistant_id"]} <= set(models)
    assert list(models)[-1] == mine["assistant_id"]
    assert (models["agent"].owned_by, models[mine["assistant_id"]].owned_by) == ("threadline", tenant)
    assert client.models.retrieve("research").id == "research"
    assert client.models.retrieve(mine["assistant_id"]).id == mine["assistant_id"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4")
    assert "GET /v1/models" in missing.value.message
    # Another tenant does not see it.
    others = make_gateway(MEMORY_TARGET=memory_target, GATEWAY_DEFAULT_TENANT=f"{tenant}-other")
    assert mine["assistant_id"] not in {m.id for m in client_for(others).models.list().data}


def test_the_api_key_is_the_openai_clients_key(make_gateway: Callable[..., TestClient], memory_target: str) -> None:
    _, key = apikeys.generate()
    gateway = make_gateway(
        MEMORY_TARGET=memory_target, GATEWAY_AUTH="required", GATEWAY_API_KEYS=f"acme:{apikeys.digest(key).hex()}"
    )
    assert {"agent", "research"} <= {m.id for m in client_for(gateway, key).models.list().data}
    _, stranger = apikeys.generate()
    with pytest.raises(openai.AuthenticationError):
        client_for(gateway, stranger).models.list()
    with pytest.raises(openai.AuthenticationError):
        client_for(gateway, stranger).chat.completions.create(
            model="agent", messages=[{"role": "user", "content": "hi"}]
        )


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "last message must be a user"),
        ([{"role": "user", "content": "   "}], "must not be blank"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}], "must not be blank"),
        ([{"role": "user", "content": "x" * 9000}], "at most"),
    ],
    ids=["assistant-last", "blank", "no-text", "too-long"],
)
def test_bad_conversations_are_422_naming_messages(gateway: TestClient, messages: list, words: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client_for(gateway).chat.completions.create(model="agent", messages=messages)
    fields = refused.value.body["details"]["fields"]
    assert fields[0]["field"] == "messages" and words in fields[0]["message"]


def test_an_unknown_model_is_a_404_before_any_run(make_gateway: Callable[..., TestClient], memory_target: str) -> None:
    gateway = make_gateway(MEMORY_TARGET=memory_target)
    with pytest.raises(openai.NotFoundError) as missing:
        client_for(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "model_not_found"
    assert "threadline_gateway_runs_started_total{" not in gateway.get("/metrics").text


def test_a_malformed_thread_header_is_a_422(gateway: TestClient) -> None:
    reply = gateway.post(
        "/v1/chat/completions",
        json={"model": "agent", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Thread-Id": "../../x"},
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["details"]["fields"][0]["field"] == "X-Thread-Id"


def test_sampling_fields_are_accepted_and_n_above_one_is_not(gateway: TestClient) -> None:
    body = {"model": "agent", "messages": [{"role": "user", "content": "hi"}], "n": 2, "temperature": 0.2}
    reply = gateway.post("/v1/chat/completions", json=body)
    assert reply.status_code == 422
    assert [f["field"] for f in reply.json()["error"]["details"]["fields"]] == ["n"]


def test_conversation_keys_separate_tenants_users_and_histories() -> None:
    turns = [("user", "How are runs kept durable?"), ("assistant", "On JetStream [1].")]
    key = conversation_key("acme", "u1", "agent", turns)
    assert key == conversation_key("acme", "u1", "agent", [(r, f" {t}\n") for r, t in turns])
    assert (
        len(
            {
                key,
                conversation_key("globex", "u1", "agent", turns),
                conversation_key("acme", "u2", "agent", turns),
                conversation_key("acme", "u1", "other", turns),
                conversation_key("acme", "u1", "agent", turns[:1]),
            }
        )
        == 5
    )


def test_openapi_documents_the_openai_routes(gateway: TestClient) -> None:
    paths = gateway.get("/openapi.json").json()["paths"]
    chat = paths["/v1/chat/completions"]["post"]
    assert chat["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatCompletion")
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    for status in ("401", "404", "422", "429", "503"):
        assert chat["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "/v1/models" in paths
