"""Long-term memory through the real worker, NATS and memory service: a run of a user's (its
``user_id`` label) remembers a fact, a later run of the same user in another thread recalls it,
and erasing the user removes both the fact and the threads the runs wrote."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from nats.aio.client import Client as NatsClient
from threadline.events import RunRequested
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import ThreadServiceStub
from threadline.run_events import RunEvent
from threadline_agent.graphs.memory_tools import RECALL_TOOL, REMEMBER_TOOL, memory_namespace
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.remote.store import RemoteStore
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.agent_worker import AgentWorker

from tests.agent.test_worker import run_and_collect
from tests.conftest import NATS_URL, REDIS_URL, free_port


class ScriptedModel(BaseChatModel):
    """A stand-in for a model: "remember: X" calls remember, anything else calls recall, and a tool's
    result is answered with as it is. Enough to drive the ReAct loop through the memory tools."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(str(last.content))
        else:
            text = str(last.content)
            name, args = (
                (REMEMBER_TOOL, {"fact": text.removeprefix("remember: ")})
                if text.startswith("remember: ")
                else (RECALL_TOOL, {"query": text})
            )
            reply = AIMessage("", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])
        return ChatResult(generations=[ChatGeneration(message=reply)])

    @property
    def _llm_type(self) -> str:
        return "scripted"


@pytest.fixture(params=["no answer cache", "answer cache"])
async def worker(
    request: pytest.FixtureRequest, nats_namespace: str, nc: NatsClient, tmp_path: Path, memory_target: str
) -> AsyncIterator[AgentWorker]:
    # With the answer cache on too: an answer drawn from one user's memory must never be another's.
    cache = {"AGENT_ANSWER_CACHE_URL": REDIS_URL} if request.param == "answer cache" else {}
    settings = AgentSettings(
        nats_url=NATS_URL,
        nats_namespace=nats_namespace,
        AGENT_HEARTBEAT_FILE=tmp_path / "alive",
        RETRIEVAL_TARGET=f"127.0.0.1:{free_port()}",
        **cache,
    )
    saver = RemoteCheckpointSaver(target=memory_target)
    store = RemoteStore(target=memory_target)
    worker = AgentWorker(settings, checkpointer=saver, model=ScriptedModel(), store=store)
    await worker.app.start()
    try:
        yield worker
    finally:
        await worker.app.stop()
        for stream in (worker.topology.runs_stream, worker.topology.run_events_stream):
            await nc.jetstream().delete_stream(stream)
        await saver.close()
        await store.close()


async def ask(nc: NatsClient, worker: AgentWorker, thread: str, text: str, **metadata: str) -> str:
    run = RunRequested(run_id=uuid.uuid4().hex, thread_id=thread, tenant_id="acme", input=text, metadata=metadata)
    events: list[RunEvent] = [event for event, _ in await run_and_collect(nc, worker.topology, run)]
    assert events[-1].kind == "end", events[-1]
    return events[-1].data["answer"]


async def test_a_user_is_remembered_across_threads_and_forgotten_when_erased(
    nc: NatsClient, worker: AgentWorker, memory_target: str
) -> None:
    assert await ask(nc, worker, "t1", "remember: prefers short answers", user_id="ana") == (
        "Remembered: prefers short answers"
    )
    assert await ask(nc, worker, "t2", "what do you know about me?", user_id="ana") == "- prefers short answers"
    assert await ask(nc, worker, "t3", "what do you know about me?", user_id="bo") == (
        "Nothing is remembered about this user yet."
    )
    assert await ask(nc, worker, "t3b", "remember: prefers short answers", user_id="bo") == (
        "Remembered: prefers short answers"
    )
    assert "No user is known" in await ask(nc, worker, "t4", "remember: anonymous")

    store = RemoteStore(target=memory_target, tenant_id="acme")
    try:
        assert [i.value["fact"] for i in await store.asearch(memory_namespace("ana"))] == ["prefers short answers"]
        assert [i.value["fact"] for i in await store.asearch(memory_namespace("bo"))] == ["prefers short answers"]
        async with grpc.aio.insecure_channel(memory_target) as channel:
            erased = await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="acme", user_id="ana"))
        # The runs carried the user's label into their checkpoints, so the erasure finds ana's threads too.
        assert (erased.threads, erased.store_items) == (2, 1)
        assert await store.asearch(memory_namespace("ana")) == []
    finally:
        await store.close()
    assert await ask(nc, worker, "t5", "anything?", user_id="ana") == "Nothing is remembered about this user yet."
