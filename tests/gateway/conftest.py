"""A gateway app on the machine's real NATS, in a namespace of its own, with no agent behind it.

Tests play the agent's part by publishing run events on the run's real subject, the way a worker does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import grpc
import nats
import pytest
import uvicorn
from fastapi.testclient import TestClient
from threadline.events import Topology
from threadline.grpc import check_health
from threadline.memory.v1.memory_pb2_grpc import AssistantServiceStub
from threadline.run_events import RunEvent
from threadline_agent.remote.assistants import register_graphs as register
from threadline_agent.resilience import CircuitBreaker, Guarded, RetryPolicy
from threadline_gateway.app import create_app
from threadline_gateway.run_bus import RunRecord
from threadline_gateway.services import Services
from threadline_gateway.settings import GatewaySettings

from tests.conftest import NATS_URL, free_port


def _grpc_service(module: str, port: int, **env: str) -> Iterator[str]:
    """``python -m <module>`` listening on ``port``, until the fixture using it ends."""
    environment = {**os.environ, "LOG_LEVEL": "WARNING", **env}
    proc = subprocess.Popen([sys.executable, "-m", module], env=environment)
    try:
        deadline = time.monotonic() + 120
        while not asyncio.run(check_health(f"127.0.0.1:{port}")):
            assert proc.poll() is None and time.monotonic() < deadline, f"{module} did not start"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="session")
def retrieval_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real retrieval service (its own process), for the routes that manage documents."""
    port = free_port()
    data = str(tmp_path_factory.mktemp("kb"))
    yield from _grpc_service("threadline_retrieval", port, RETRIEVAL_PORT=str(port), RETRIEVAL_DATA_DIR=data)


@pytest.fixture(scope="session")
def memory_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real memory service (its own process, on SQLite), for the routes that read threads; the built-in
    graphs are registered in it, as an agent registers them at start, so their default assistants exist."""
    port = free_port()
    sqlite = str(tmp_path_factory.mktemp("memory") / "checkpoints.sqlite")
    env = {"MEMORY_PORT": str(port), "MEMORY_SQLITE_PATH": sqlite, "DATABASE_URL": ""}
    for target in _grpc_service("threadline_memory", port, **env):
        asyncio.run(register_graphs(target, {"agent": None, "research": None}))
        yield target


async def register_graphs(target: str, graphs: dict[str, Any]) -> None:
    """Register ``graphs`` (name -> compiled graph, or None) as an agent does at start."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = AssistantServiceStub(channel)
        await register(stub, graphs, guard=Guarded(CircuitBreaker("memory", 5, 1.0), RetryPolicy()), timeout_s=10)


@pytest.fixture
def make_gateway(nats_namespace: str) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        # Unless a test says otherwise, retrieval and memory are ports nobody listens on.
        targets = {"RETRIEVAL_TARGET": f"127.0.0.1:{free_port()}", "MEMORY_TARGET": f"127.0.0.1:{free_port()}"}
        settings = GatewaySettings(NATS_URL=NATS_URL, NATS_NAMESPACE=nats_namespace, **(targets | overrides))
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def gateway(make_gateway: Callable[..., TestClient]) -> TestClient:
    return make_gateway()


def services(client: TestClient) -> Services:
    """What the app's lifespan opened: its real bus, limiter and clients."""
    opened: Services = client.app.state.services
    return opened


def remember(client: TestClient, record: RunRecord) -> None:
    """Store a run's owner through the app's own bus (on the app's event loop)."""
    client.portal.call(services(client).bus.remember, record)


def publish_events(namespace: str, run_id: str, events: list[tuple[int, str, dict[str, Any]]]) -> None:
    """Publish (seq, kind, data) events on the run's subject and wait until the stream has stored them."""

    async def go() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            topology = Topology(namespace)
            for seq, kind, data in events:
                event = RunEvent(run_id=run_id, seq=seq, kind=kind, data=data)
                await js.publish(topology.run_events(run_id), event.to_bytes(), stream=topology.run_events_stream)
        finally:
            await nc.close()

    asyncio.run(go())


ANSWER = {
    "answer": "Runs are durable [1].",
    "citations": [{"document_id": "d", "chunk_id": "c", "text": "t", "score": 1.0, "metadata": {"filename": "d"}}],
}


def run_events(run_id: str, thread_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """A whole run as an agent publishes it, with seq 2 published twice, as a redelivered run may do."""
    run = {"run_id": run_id, "thread_id": thread_id, "assistant_id": "agent"}
    return [
        (0, "metadata", run),
        (1, "token", {"text": "Runs "}),
        (2, "token", {"text": "are durable [1]."}),
        (2, "token", {"text": "are durable [1]."}),
        (3, "citations", {"citations": ANSWER["citations"]}),
        (4, "end", {**run, **ANSWER, "model": "extractive", "usage": {"total_tokens": 5}}),
    ]


@contextmanager
def served_gateway(settings: GatewaySettings) -> Iterator[str]:
    """A gateway on a real uvicorn server (a thread of this process) until the block ends; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def serve(nats_namespace: str) -> Iterator[Callable[..., str]]:
    """Start gateways on real uvicorn servers; returns each one's base URL."""
    with ExitStack() as servers:

        def start(**overrides: Any) -> str:
            settings = GatewaySettings(NATS_URL=NATS_URL, NATS_NAMESPACE=nats_namespace, **overrides)
            return servers.enter_context(served_gateway(settings))

        yield start
