"""Structured output in the agent: a worker on the real NATS whose ChatOpenAI talks real HTTP and SSE to a scripted
OpenAI-compatible server (valid, invalid then valid, invalid twice), and the offline extractive answerer over a real
retrieval service (its own cited-answer schema filled, any other refused before the graph runs)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from threadline.cited_answer import cited_answer_schema, fills
from threadline.events import RunRequested
from threadline.output_schema import OutputSchema
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline.run_events import RunEvent
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.chat_models import chat_model
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.agent_worker import AgentWorker
from threadline_retrieval.server import serve as serve_retrieval
from threadline_retrieval.settings import RetrievalSettings

from tests.agent.conftest import running_worker
from tests.agent.openai_server import ANSWER, USAGE, ScriptedModel, serve_openai
from tests.agent.test_worker import run_and_collect
from tests.conftest import free_port

QUESTION = "Where is a run request kept?"
SCHEMA = {
    "type": "object",
    "properties": {"place": {"type": "string"}, "durable": {"type": "boolean"}},
    "required": ["place", "durable"],
    "additionalProperties": False,
}
VALID = {"place": "a JetStream work queue", "durable": True}


@dataclass
class StructuringModel(ScriptedModel):
    """Answers a question at once (no tool call), and a structured-output request with the next of ``outputs``."""

    outputs: list[str] = field(default_factory=list)

    def reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int]]:
        if "response_format" in body:
            return {"content": self.outputs.pop(0)}, "stop", USAGE[0]
        return {"content": ANSWER}, "stop", USAGE[1]

    def structuring(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "response_format" in r]


@dataclass
class Served:
    model: StructuringModel
    worker: AgentWorker


@pytest.fixture
async def served(nats_namespace: str, nc: NatsClient, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve_openai(StructuringModel()) as scripted:
        assert isinstance(scripted, StructuringModel)
        endpoint = {"OPENAI_BASE_URL": scripted.base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": "scripted"}
        model = chat_model(AgentSettings(**endpoint))
        async with running_worker(nats_namespace, nc, tmp_path, model, AGENT_MEMORY_TOOLS=False) as worker:
            yield Served(scripted, worker)


def structured_run(output: OutputSchema, question: str = QUESTION) -> RunRequested:
    return RunRequested(
        run_id=uuid.uuid4().hex, thread_id=uuid.uuid4().hex, tenant_id="acme", input=question, output_schema=output
    )


async def final(nc: NatsClient, worker: AgentWorker, run: RunRequested) -> list[RunEvent]:
    return [event for event, _ in await run_and_collect(nc, worker.topology, run)]


async def test_a_valid_answer_is_the_runs_structured_response(served: Served, nc: NatsClient) -> None:
    served.model.outputs = [json.dumps(VALID)]
    output = OutputSchema(json_schema=SCHEMA, name="where", strict=True)
    events = await final(nc, served.worker, structured_run(output))

    end = events[-1].result()
    assert end.structured_response == VALID
    assert end.answer == ANSWER == "".join(e.data["text"] for e in events if e.kind == "token")  # prose streams
    spent = [u["prompt_tokens"] + u["completion_tokens"] for u in USAGE]
    assert end.usage.total_tokens == sum(spent)  # the answer's and the structuring call's
    # What the real client sent over HTTP: OpenAI's json_schema response format, and the conversation with the answer.
    (asked,) = served.model.structuring()
    assert asked["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "where", "schema": SCHEMA, "strict": True},
    }
    roles = [m["role"] for m in asked["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert (asked["messages"][1]["content"], asked["messages"][2]["content"]) == (QUESTION, ANSWER)


async def test_an_invalid_answer_is_sent_back_once_with_what_was_wrong(served: Served, nc: NatsClient) -> None:
    served.model.outputs = [json.dumps({"place": "a queue"}), json.dumps(VALID)]
    events = await final(nc, served.worker, structured_run(OutputSchema(json_schema=SCHEMA)))

    assert events[-1].result().structured_response == VALID
    first, second = served.model.structuring()
    told = second["messages"][len(first["messages"]) :]
    assert [m["role"] for m in told] == ["assistant", "user"]
    assert told[0]["content"] == json.dumps({"place": "a queue"})
    assert "'durable' is a required property" in told[1]["content"]


async def test_an_answer_invalid_twice_fails_the_run_naming_the_error(served: Served, nc: NatsClient) -> None:
    served.model.outputs = ["not json at all", json.dumps({"place": 7, "durable": True})]
    events = await final(nc, served.worker, structured_run(OutputSchema(json_schema=SCHEMA)))

    failure = events[-1].failure()
    assert failure.code == "output_invalid"
    assert "7 is not of type 'string'" in failure.message and "$.place" in failure.message
    assert len(served.model.structuring()) == 2


async def test_json_mode_asks_for_a_json_object(served: Served, nc: NatsClient) -> None:
    served.model.outputs = ["[1, 2]", json.dumps(VALID)]
    events = await final(nc, served.worker, structured_run(OutputSchema.any_object()))

    assert events[-1].result().structured_response == VALID
    first, _ = served.model.structuring()
    assert first["response_format"] == {"type": "json_object"}


async def test_the_offline_answerer_fills_its_cited_answer_schema_and_refuses_others(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    port = free_port()
    retrieval = RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=port, RETRIEVAL_DATA_DIR=tmp_path / "kb")
    passage = "Every run request is stored in a JetStream work queue until a worker acknowledges it."
    async with serve_retrieval(retrieval):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            documents = [pb.Document(id="durability.md", text=passage)]
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).Ingest(
                pb.IngestRequest(tenant_id="acme", documents=documents)
            )
        async with running_worker(
            nats_namespace, nc, tmp_path, ExtractiveAnswerer(), RETRIEVAL_TARGET=f"127.0.0.1:{port}"
        ) as worker:
            titled = {**cited_answer_schema(), "title": "Mine"}  # words about the schema do not change it
            filled = await final(nc, worker, structured_run(OutputSchema(json_schema=titled)))
            refused = await final(nc, worker, structured_run(OutputSchema(json_schema=SCHEMA)))

    end = filled[-1].result()
    assert end.structured_response is not None
    assert end.structured_response["answer"] == end.answer and "[1]" in end.answer
    assert end.structured_response["citations"] == [
        {"n": 1, "document_id": "durability.md", "chunk_id": end.citations[0].chunk_id, "text": passage}
    ]
    failure = refused[-1].failure()
    assert failure.code == "output_schema_unsupported" and "cited-answer schema" in failure.message
    assert [e.kind for e in refused] == ["metadata", "error"]  # refused before the graph ran


def test_the_cited_answer_schema_is_recognised_by_its_shape_not_its_words() -> None:
    schema = cited_answer_schema()
    bare = json.loads(json.dumps(schema).replace('"description": "The cited passage."', '"title": "text"'))
    assert fills(OutputSchema(json_schema=bare)) and fills(OutputSchema.any_object())
    schema["properties"]["answer"]["maxLength"] = 10
    assert not fills(OutputSchema(json_schema=schema))
