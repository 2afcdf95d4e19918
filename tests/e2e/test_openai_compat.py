"""The official ``openai`` client pointed at the mesh: Threadline as a model, streamed and not, threads kept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.conftest import Mesh


@pytest.fixture
def client(mesh: Mesh) -> Iterator[openai.OpenAI]:
    # Auth is off in the embedded mesh; the client insists on some key, which the gateway does not read.
    with openai.OpenAI(base_url=f"{mesh.url}/v1", api_key="local", max_retries=0, timeout=120) as client:
        yield client


def test_the_assistant_is_listed_as_a_model(client: openai.OpenAI) -> None:
    assert "agent" in [m.id for m in client.models.list()]
    assert client.models.retrieve("agent").owned_by == "threadline"


def test_a_completion_is_a_cited_answer(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="agent",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "How are runs kept durable?"},
        ],
        temperature=0.1,
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "agent"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "[1]" in choice.message.content
    extra = completion.model_extra
    assert extra["citations"] and extra["citations"][0]["document_id"].endswith(".md")
    uuid.UUID(extra["thread_id"])
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.completion_tokens > 0


def test_a_streamed_completion_arrives_in_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="agent",
        messages=[{"role": "user", "content": "Which ports do the services listen on?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 1 and "".join(content).strip()
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    assert finishing[0].model_extra["citations"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_a_resent_history_continues_its_thread(client: openai.OpenAI) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    first_q = {"role": "user", "content": "How are runs kept durable?"}
    first = client.chat.completions.create(model="agent", messages=[first_q], user=user)
    history = [first_q, {"role": "assistant", "content": first.choices[0].message.content}]
    second_q = {"role": "user", "content": "What happens when a worker dies?"}

    # Streamed this time: the thread is found either way, and the streamed text is remembered for the third turn.
    stream = client.chat.completions.create(model="agent", messages=[*history, second_q], user=user, stream=True)
    chunks = list(stream)
    second_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    thread_ids = {c.model_extra.get("thread_id") for c in chunks if c.choices and c.choices[0].finish_reason}
    assert thread_ids == {first.model_extra["thread_id"]}

    third = client.chat.completions.create(
        model="agent",
        messages=[
            *history,
            second_q,
            {"role": "assistant", "content": second_text},
            {"role": "user", "content": "Thanks!"},
        ],
        user=user,
    )
    assert third.model_extra["thread_id"] == first.model_extra["thread_id"]

    # The same history from another end user, or an edited one, is another conversation.
    other_user = client.chat.completions.create(model="agent", messages=[*history, second_q], user=user + "-b")
    edited = client.chat.completions.create(
        model="agent", messages=[first_q, {"role": "assistant", "content": "edited"}, second_q], user=user
    )
    assert other_user.model_extra["thread_id"] != first.model_extra["thread_id"]
    assert edited.model_extra["thread_id"] != first.model_extra["thread_id"]


def test_a_thread_can_be_named(client: openai.OpenAI) -> None:
    thread_id = f"chat-{uuid.uuid4().hex[:8]}"
    completion = client.chat.completions.create(
        model="agent",
        messages=[{"role": "user", "content": "How are runs kept durable?"}],
        extra_body={"thread_id": thread_id},
    )
    assert completion.model_extra["thread_id"] == thread_id
    raw = client.chat.completions.with_raw_response.create(
        model="agent",
        messages=[{"role": "user", "content": "And the events?"}],
        extra_headers={"X-Thread-Id": thread_id},
    )
    assert raw.headers["x-thread-id"] == thread_id


def test_errors_surface_as_the_clients_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="agent", messages=[{"role": "assistant", "content": "hi"}])


def test_the_research_assistant_is_a_model_that_answers_with_citations(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["agent", "research", "planner", "supervisor"]
    completion = client.chat.completions.create(
        model="research", messages=[{"role": "user", "content": "How are runs kept durable?"}]
    )
    assert "[1]" in completion.choices[0].message.content and completion.model == "research"
