"""Webhooks: a run's outcome is POSTed to a real local HTTP receiver once the real agent has ended it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from nats.aio.client import Client as NatsClient
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.worker.agent_worker import AgentWorker

from tests.agent.conftest import running_worker

QUESTION = {"messages": [{"role": "user", "content": "How are runs kept durable?"}]}


class Receiver:
    """A webhook receiver on a real local HTTP server: answers 500 to its first ``failures`` POSTs."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.bodies, self.attempts = failures, [], 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts += 1
                ok = receiver.attempts > receiver.failures
                if ok:
                    receiver.bodies.append(body)
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def received(self, n: int = 1, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self.bodies) < n:
            assert asyncio.get_running_loop().time() < deadline, f"{len(self.bodies)} webhooks of {n} received"
            await asyncio.sleep(0.05)
        return self.bodies


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(failures: int = 0) -> Receiver:
        made.append(Receiver(failures))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()


@pytest.fixture
async def worker(nats_namespace: str, nc: NatsClient, tmp_path: Path, memory_target: str) -> AsyncIterator[AgentWorker]:
    saver = RemoteCheckpointSaver(target=memory_target)
    async with running_worker(
        nats_namespace, nc, tmp_path, ExtractiveAnswerer(), checkpointer=saver, MEMORY_TARGET=memory_target
    ) as worker:
        yield worker


@pytest.fixture
async def lg(serve: Callable[..., str], memory_target: str) -> AsyncIterator[LangGraphClient]:
    url = serve(MEMORY_TARGET=memory_target, GATEWAY_WEBHOOK_BACKOFF_S="0.2")
    client = get_client(url=f"{url}/langgraph")
    yield client
    await client.aclose()


async def test_a_run_s_outcome_is_posted_to_its_webhook_once(
    lg: LangGraphClient, worker: AgentWorker, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    thread = await lg.threads.create()
    run = await lg.runs.create(thread["thread_id"], "agent", input=QUESTION, webhook=hook.url, metadata={"k": "v"})
    [body] = await hook.received()
    assert body["run_id"] == run["run_id"] and body["thread_id"] == thread["thread_id"]
    assert body["status"] == "success" and body["metadata"]["k"] == "v"
    assert body["values"]["messages"][0]["type"] == "human"
    assert body["values"]["messages"][-1]["type"] == "ai" and body["webhook_sent_at"]
    await asyncio.sleep(1.0)
    assert hook.attempts == 1  # once, not once per replica or per retry


async def test_a_failing_receiver_gets_the_outcome_after_retries(
    lg: LangGraphClient, worker: AgentWorker, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver(failures=2)
    run = await lg.runs.create(None, "agent", input=QUESTION, webhook=hook.url)
    [body] = await hook.received()
    assert body["run_id"] == run["run_id"] and body["status"] == "success"
    assert hook.attempts == 3


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "http://", "javascript:alert(1)"])
async def test_a_webhook_that_is_not_an_http_url_is_a_422(lg: LangGraphClient, url: str) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await lg.runs.create(None, "agent", input=QUESTION, webhook=url)
    assert refused.value.response.status_code == 422
    assert refused.value.response.json()["error"]["details"]["fields"][0]["field"] == "webhook"


async def test_webhook_hosts_restrict_where_runs_may_post(serve: Callable[..., str], memory_target: str) -> None:
    url = serve(MEMORY_TARGET=memory_target, GATEWAY_WEBHOOK_HOSTS="hooks.example.com")
    async with httpx.AsyncClient(base_url=url) as http:
        body = {"input": "How are runs kept durable?", "webhook": "http://169.254.169.254/latest"}
        refused = await http.post("/api/v1/runs", json=body)
        assert refused.status_code == 422, refused.text
        assert "GATEWAY_WEBHOOK_HOSTS" in refused.json()["error"]["details"]["fields"][0]["message"]
        allowed = await http.post("/api/v1/runs", json=body | {"webhook": "https://hooks.example.com/x"})
        assert allowed.status_code == 202, allowed.text
