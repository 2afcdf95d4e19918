"""The ChatOpenAI path end to end: a worker on real NATS, a real retrieval service, and the real
``openai`` client under ChatOpenAI talking HTTP and SSE to an OpenAI-compatible server that first
calls the knowledge-base tool and then answers from its result."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_agent.graphs.chat_models import chat_model
from threadline_agent.settings import AgentSettings
from threadline_retrieval.server import serve as serve_retrieval
from threadline_retrieval.settings import RetrievalSettings

from tests.agent.conftest import running_worker
from tests.agent.openai_server import ANSWER, USAGE, serve_openai
from tests.agent.test_worker import run_and_collect
from tests.conftest import free_port

PASSAGE = "Every run request is stored in a JetStream work queue until a worker acknowledges it."
QUESTION = "Where is a run request kept?"


async def test_a_tool_calling_model_streams_its_answer_with_citations_and_usage(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    port = free_port()
    retrieval = RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=port, RETRIEVAL_DATA_DIR=tmp_path / "kb")
    async with serve_retrieval(retrieval), serve_openai() as scripted:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            documents = [pb.Document(id="durability.md", text=PASSAGE)]
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).Ingest(
                pb.IngestRequest(tenant_id="acme", documents=documents)
            )
        endpoint = {"OPENAI_BASE_URL": scripted.base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": "scripted"}
        model = chat_model(AgentSettings(**endpoint))
        async with running_worker(
            nats_namespace, nc, tmp_path, model, RETRIEVAL_TARGET=f"127.0.0.1:{port}", AGENT_MEMORY_TOOLS=False
        ) as worker:
            run = RunRequested(run_id=uuid.uuid4().hex, thread_id=uuid.uuid4().hex, tenant_id="acme", input=QUESTION)
            events = [event for event, _ in await run_and_collect(nc, worker.topology, run)]

    kinds = [e.kind for e in events]
    assert kinds[0] == "metadata" and kinds[-1] == "end", kinds
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    call = next(e.data for e in events if e.kind == "tool_call")
    assert (call["name"], call["args"]) == ("search_knowledge_base", {"query": QUESTION})
    end = events[-1].data
    assert end["answer"] == ANSWER == "".join(e.data["text"] for e in events if e.kind == "token")
    assert [c["document_id"] for c in end["citations"]] == ["durability.md"]
    assert end["model"] == "scripted"
    spent = [u["prompt_tokens"] + u["completion_tokens"] for u in USAGE]
    assert (end["usage"]["total_tokens"], end["usage"]["approximate"]) == (sum(spent), False)

    # What the real client sent: streamed requests offering the tool, then the tool's result for its call.
    first, second = scripted.requests
    assert first["stream"] and first["stream_options"] == {"include_usage": True}
    assert "search_knowledge_base" in {t["function"]["name"] for t in first["tools"]}
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"] == "call_1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"query": QUESTION}
    assert PASSAGE in tool["content"]
