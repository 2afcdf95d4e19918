"""``THREADLINE_GRAPHS=examples/langgraph.json ./task up``: the example project served by the whole mesh."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.e2e.mesh import ROOT, MeshProcess, wait_gone


def test_task_up_serves_the_example_graphs(tmp_path: Path) -> None:
    gateway_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"NATS_URL", "DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENT_GRAPHS"}
        and not key.startswith("OTEL_")
    }
    env.update(
        THREADLINE_GRAPHS="examples/langgraph.json",
        GATEWAY_PORT=str(gateway_port),
        THREADLINE_NATS_PORT=str(free_port()),
        RETRIEVAL_PORT=str(free_port()),
        MEMORY_PORT=str(free_port()),
        THREADLINE_DATA_DIR=str(tmp_path / "data"),
    )
    up = MeshProcess([str(ROOT / "task"), "up"], env)
    try:
        up.wait_ready(timeout=300)
        started = up.descendants()
        assert f"graphs from {ROOT / 'examples' / 'langgraph.json'}" in "\n".join(up.lines)
        base = f"http://127.0.0.1:{gateway_port}"
        tally = httpx.post(
            f"{base}/langgraph/runs/wait",
            json={"assistant_id": "tally", "input": {"text": "to be or not to be"}, "context": {"user": "ada"}},
            timeout=60,
        )
        assert tally.status_code == 200, tally.text
        assert tally.json() == {"text": "to be or not to be", "count": 6, "report": "ada: 6 words"}
        chat = httpx.post(
            f"{base}/api/v1/query", json={"input": "How are runs kept durable?", "assistant_id": "kb_chat"}, timeout=60
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["citations"]
    finally:
        code = up.interrupt()
    assert code == 0, "\n".join(up.lines[-20:])
    assert not wait_gone(started), "processes left running after Ctrl-C"
