"""``./task up`` itself: embedded NATS and file stores, a first answer, and a clean Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.e2e.mesh import ROOT, MeshProcess, wait_gone


def test_task_up_answers_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    gateway_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"NATS_URL", "DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"}
        and not key.startswith("OTEL_")
    }
    env.update(
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
        assert len(started) >= 6, started  # task, the launcher, nats-server and the four services

        output = "\n".join(up.lines)
        assert f"http://127.0.0.1:{gateway_port}" in output
        assert "curl -s" in output

        reply = httpx.post(
            f"http://127.0.0.1:{gateway_port}/api/v1/query", json={"input": "How are runs kept durable?"}, timeout=60
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["citations"]
        assert (tmp_path / "data" / "nats").is_dir()
        assert (tmp_path / "data" / "memory" / "checkpoints.sqlite").is_file()
    finally:
        code = up.interrupt()
    assert code == 0, "\n".join(up.lines[-20:])
    assert not wait_gone(started), "processes left running after Ctrl-C"
