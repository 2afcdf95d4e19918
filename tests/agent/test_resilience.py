"""Retries and the circuit breaker around retrieval and memory, and runs that answer while retrieval is down."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from langchain_core.messages import ToolMessage
from langchain_openai import ChatOpenAI
from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline.grpc import traced_channel
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_agent.graphs.answerer import NOTHING_RELEVANT, ExtractiveAnswerer
from threadline_agent.graphs.chat_models import chat_model
from threadline_agent.graphs.knowledge_base import make_knowledge_base_tool
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.resilience import CircuitBreaker, CircuitOpen, Guarded, RetryPolicy
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.execution import KNOWLEDGE_BASE_NOTICE
from threadline_retrieval.server import serve as serve_retrieval
from threadline_retrieval.settings import RetrievalSettings

from tests.agent.conftest import running_worker
from tests.agent.test_worker import run_and_collect
from tests.conftest import free_port

NO_WAIT = RetryPolicy(attempts=2, backoff_s=0.0, backoff_max_s=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")


class Dependency:
    """Counts calls and fails with whatever its script says next (None: answers)."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        failure = self.script.pop(0) if self.script else None
        if failure is not None:
            raise failure
        return "ok"


async def test_a_transient_failure_is_retried_and_the_call_succeeds() -> None:
    guard = Guarded(CircuitBreaker("dep", 5, 30), NO_WAIT)
    dependency = Dependency(unavailable(), None)
    assert await guard.call(dependency) == "ok"
    assert dependency.calls == 2
    assert guard.breaker.state == "closed"


async def test_a_bad_request_is_neither_retried_nor_counted_against_the_dependency() -> None:
    guard = Guarded(CircuitBreaker("dep", 1, 30), NO_WAIT)
    bad = grpc.aio.AioRpcError(grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), grpc.aio.Metadata(), "bad")
    dependency = Dependency(bad)
    with pytest.raises(grpc.aio.AioRpcError):
        await guard.call(dependency)
    assert dependency.calls == 1
    assert guard.breaker.state == "closed"


async def test_the_breaker_opens_after_n_failures_then_lets_one_trial_through() -> None:
    clock = Clock()
    guard = Guarded(CircuitBreaker("dep", 3, 30, clock=clock), NO_WAIT)
    dependency = Dependency(*[unavailable()] * 10)
    with pytest.raises(grpc.aio.AioRpcError):
        await guard.call(dependency)  # two failures: still closed
    assert (dependency.calls, guard.breaker.state) == (2, "closed")
    with pytest.raises(CircuitOpen):
        await guard.call(dependency)  # the third failure opens it; the retry is refused, not made
    assert (dependency.calls, guard.breaker.state, guard.breaker.rejected) == (3, "open", 1)
    for _ in range(5):
        with pytest.raises(CircuitOpen):
            await guard.call(dependency)
    assert (dependency.calls, guard.breaker.rejected) == (3, 6)  # short-circuited: the dependency saw nothing

    clock.now += 30
    assert guard.breaker.state == "half_open"
    with pytest.raises(CircuitOpen):
        await guard.call(dependency)  # the one trial fails: open again, for another 30 s
    assert (dependency.calls, guard.breaker.state) == (4, "open")

    clock.now += 30
    dependency.script.clear()
    assert await guard.call(dependency) == "ok"
    assert (dependency.calls, guard.breaker.state) == (5, "closed")


async def test_the_knowledge_base_tool_stops_calling_a_dead_retrieval_service() -> None:
    guard = Guarded(CircuitBreaker("retrieval", 3, 300), NO_WAIT)
    async with traced_channel(f"127.0.0.1:{free_port()}") as channel:
        kb = make_knowledge_base_tool(retrieval_pb2_grpc.RetrievalServiceStub(channel), k=4, guard=guard)
        results = []
        for n in range(5):
            call = {"name": kb.name, "args": {"query": "anything"}, "id": f"c{n}", "type": "tool_call"}
            results.append(await kb.ainvoke(call, {"configurable": {"tenant_id": "acme"}}))
    assert all(isinstance(r, ToolMessage) and r.status == "error" for r in results)
    assert all("could not be consulted" in r.content for r in results)
    # 2 attempts, then 1 that opens the breaker; the three searches after it never reach the network.
    assert guard.breaker.calls == 3
    assert guard.breaker.rejected == 4
    assert guard.breaker.state == "open"
    assert "suspended" in results[-1].content


async def test_the_checkpointer_fails_fast_once_memory_is_known_down() -> None:
    guard = Guarded(CircuitBreaker("memory", 2, 300), NO_WAIT)
    saver = RemoteCheckpointSaver(target=f"127.0.0.1:{free_port()}", timeout_s=5, guard=guard)
    config: dict[str, Any] = {"configurable": {"thread_id": "t1", "tenant_id": "acme"}}
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await saver.aget_tuple(config)
        assert guard.breaker.calls == 2  # retried once
        with pytest.raises(CircuitOpen):
            await saver.aget_tuple(config)
        with pytest.raises(CircuitOpen):
            async for _ in saver.alist(config):
                pass
        assert guard.breaker.calls == 2
    finally:
        await saver.close()


def test_settings_build_the_guards_and_configure_the_model() -> None:
    settings = AgentSettings(
        AGENT_RETRY_ATTEMPTS=4, AGENT_BREAKER_FAILURES=7, AGENT_BREAKER_RESET_S=9, OPENAI_MAX_RETRIES=5
    )
    guard = settings.guard("retrieval")
    assert (guard.name, guard.retry.attempts, guard.breaker.failure_threshold, guard.breaker.reset_s) == (
        "retrieval",
        4,
        7,
        9,
    )
    model = chat_model(settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"}))
    assert model.max_retries == 5


class SilentAboutOutages(ExtractiveAnswerer):
    """A model that does not mention a failed search (as a real one may not): the run must say it anyway."""

    def _answer(self, query: str, results: list[ToolMessage]) -> tuple[str, list[dict[str, Any]]]:
        if any(m.status == "error" for m in results):
            return NOTHING_RELEVANT, []
        return super()._answer(query, results)


async def test_a_run_answers_while_retrieval_goes_down(nats_namespace: str, nc: NatsClient, tmp_path: Path) -> None:
    port = free_port()
    settings = RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=port, RETRIEVAL_DATA_DIR=tmp_path / "kb")
    async with running_worker(
        nats_namespace,
        nc,
        tmp_path,
        SilentAboutOutages(),
        RETRIEVAL_TARGET=f"127.0.0.1:{port}",
        AGENT_RETRY_ATTEMPTS=2,
        AGENT_RETRY_BACKOFF_S=0,
        AGENT_BREAKER_FAILURES=3,
        AGENT_BREAKER_RESET_S=300,
    ) as worker:

        def question(text: str) -> RunRequested:
            return RunRequested(run_id=uuid.uuid4().hex, thread_id=uuid.uuid4().hex, tenant_id="acme", input=text)

        async with serve_retrieval(settings), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            doc = pb.Document(id="durability.md", text="Every run request is stored in a JetStream work queue.")
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            await stub.Ingest(pb.IngestRequest(tenant_id="acme", documents=[doc]))
            events = await run_and_collect(nc, worker.topology, question("Where is a run request stored?"))
            up = events[-1][0].data
        assert events[-1][0].kind == "end"
        assert up["knowledge_base_unavailable"] is False
        assert [c["document_id"] for c in up["citations"]] == ["durability.md"]
        assert KNOWLEDGE_BASE_NOTICE not in up["answer"]

        # The service is gone: the run still ends with an answer, and says it was given without the knowledge base.
        events = await run_and_collect(nc, worker.topology, question("Where is a run request stored?"))
        down = events[-1][0].data
        assert events[-1][0].kind == "end"
        assert down["knowledge_base_unavailable"] is True
        assert down["answer"] == f"{NOTHING_RELEVANT}\n\n{KNOWLEDGE_BASE_NOTICE}"
        assert "".join(e.data["text"] for e, _ in events if e.kind == "token") == down["answer"]
        assert next(e.data for e, _ in events if e.kind == "tool_result")["status"] == "error"
        breaker = worker.retrieval_guard.breaker
        calls_before = breaker.calls

        # Two failed attempts above, the third opens the breaker: later runs do not try at all.
        await run_and_collect(nc, worker.topology, question("And where else?"))
        events = await run_and_collect(nc, worker.topology, question("Anything?"))
        assert breaker.state == "open"
        assert breaker.calls == calls_before + 1
        assert breaker.rejected == 2
        assert events[-1][0].data["knowledge_base_unavailable"] is True


async def test_runs_stop_waiting_on_a_dead_model_once_its_breaker_opens(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    # A closed port: every request fails to connect, and the client does not retry (OPENAI_MAX_RETRIES=0).
    model = ChatOpenAI(
        model="local", api_key="unused", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0, streaming=True
    )
    async with running_worker(
        nats_namespace, nc, tmp_path, model, AGENT_MAX_ATTEMPTS=1, AGENT_BREAKER_FAILURES=2, AGENT_BREAKER_RESET_S=300
    ) as worker:
        breaker = worker.model_breaker
        ends = []
        for n in range(4):
            run = RunRequested(run_id=uuid.uuid4().hex, thread_id=f"m{n}", tenant_id="acme", input="Hello?")
            ends.append((await run_and_collect(nc, worker.topology, run))[-1][0])
        assert [(e.kind, e.data["code"]) for e in ends] == [("error", "model_unavailable")] * 4
        # Two runs reached the model and failed; the two after them were refused without trying.
        assert (breaker.calls, breaker.rejected, breaker.state) == (2, 2, "open")
        assert "runs wait" in ends[-1].data["message"]


async def test_runs_fail_fast_and_transiently_once_memory_is_known_down(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    guard = Guarded(CircuitBreaker("memory", 2, 300), NO_WAIT)
    saver = RemoteCheckpointSaver(target=f"127.0.0.1:{free_port()}", timeout_s=5, guard=guard)
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), checkpointer=saver, AGENT_MAX_ATTEMPTS=1
    ) as worker:
        ends = []
        for n in range(2):
            run = RunRequested(run_id=uuid.uuid4().hex, thread_id=f"k{n}", tenant_id="acme", input="Hello?")
            ends.append((await run_and_collect(nc, worker.topology, run))[-1][0])
    await saver.close()
    assert [(e.kind, e.data["code"]) for e in ends] == [("error", "dependency_unavailable")] * 2
    assert "UNAVAILABLE" in ends[0].data["message"]  # the first run reached memory (twice) and failed
    assert "suspended" in ends[1].data["message"]  # the second never called it
    assert (guard.breaker.calls, guard.breaker.state) == (2, "open")
