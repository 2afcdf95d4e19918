"""Workers on the machine's real NATS for the agent's tests (one whose model is slow), and a memory service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from nats.aio.client import Client as NatsClient
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.agent_worker import AgentWorker
from threadline_memory.server import serve as serve_memory

from tests.conftest import NATS_URL, free_port
from tests.memory.conftest import memory_settings


class SlowAnswerer(ExtractiveAnswerer):
    """Streams a word every 100 ms, like a model under load (this test's stand-in for a remote model)."""

    async def _astream(self, *args: Any, **kwargs: Any):
        async for chunk in super()._astream(*args, **kwargs):
            await asyncio.sleep(0.1)
            yield chunk


@asynccontextmanager
async def running_worker(
    nats_namespace: str,
    nc: NatsClient,
    tmp_path: Path,
    model: BaseChatModel,
    checkpointer: BaseCheckpointSaver | None = None,
    **settings: Any,
) -> AsyncIterator[AgentWorker]:
    """A worker on the real NATS, then its streams gone.

    No retrieval or memory service unless RETRIEVAL_TARGET / MEMORY_TARGET say where: by default their
    ports are ones nobody listens on (the worker then registers its graphs in the background, in vain).
    """
    config = AgentSettings(
        nats_url=NATS_URL,
        nats_namespace=nats_namespace,
        AGENT_HEARTBEAT_FILE=tmp_path / "alive",
        **{"RETRIEVAL_TARGET": f"127.0.0.1:{free_port()}", "MEMORY_TARGET": f"127.0.0.1:{free_port()}", **settings},
    )
    worker = AgentWorker(config, checkpointer=checkpointer or InMemorySaver(), model=model)
    await worker.app.start()
    try:
        yield worker
    finally:
        await worker.app.stop()
        for stream in (worker.topology.runs_stream, worker.topology.run_events_stream, worker.topology.webhooks_stream):
            await nc.jetstream().delete_stream(stream)


@pytest.fixture
async def worker(nats_namespace: str, nc: NatsClient, tmp_path: Path) -> AsyncIterator[AgentWorker]:
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), AGENT_METRICS_PORT=free_port()
    ) as worker:
        yield worker


@pytest.fixture
async def slow_worker(nats_namespace: str, nc: NatsClient, tmp_path: Path) -> AsyncIterator[AgentWorker]:
    async with running_worker(nats_namespace, nc, tmp_path, SlowAnswerer()) as worker:
        yield worker


@pytest.fixture
async def memory_target(database: str, tmp_path: Path) -> AsyncIterator[str]:
    """The memory service on its own PostgreSQL database."""
    async with serve_memory(memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")) as port:
        yield f"127.0.0.1:{port}"
