"""Start the mesh exactly as ``./task up`` does, on free ports and a throw-away data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from threadline.grpc import check_health

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunningMesh:
    url: str
    retrieval_target: str
    memory_target: str
    nats_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_mesh(timeout_s: float = 240, extra_env: dict[str, str] | None = None) -> Iterator[RunningMesh]:
    """The four services and an embedded NATS, with docs/ loaded; stopped with SIGINT on exit.

    ``extra_env`` (e.g. a ``DATABASE_URL``) is applied after the embedded defaults are forced.
    """
    ports = {name: _free_port() for name in ("GATEWAY_PORT", "RETRIEVAL_PORT", "MEMORY_PORT", "THREADLINE_NATS_PORT")}
    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as data_dir:
        env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "THREADLINE_DATA_DIR": data_dir}
        env["LOG_LEVEL"] = "WARNING"
        for name in ("NATS_URL", "DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(name, None)
        env.update(extra_env or {})
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "up.py")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout_s
            assert proc.stdout is not None
            for line in proc.stdout:
                if "Threadline is up" in line:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the mesh did not come up in time")
            else:
                raise RuntimeError(f"the mesh exited with {proc.wait()} before it was up")
            yield RunningMesh(
                url=f"http://127.0.0.1:{ports['GATEWAY_PORT']}",
                retrieval_target=f"127.0.0.1:{ports['RETRIEVAL_PORT']}",
                memory_target=f"127.0.0.1:{ports['MEMORY_PORT']}",
                nats_url=f"nats://127.0.0.1:{ports['THREADLINE_NATS_PORT']}",
            )
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)


@contextmanager
def grpc_service(module: str, port: int, env: dict[str, str], timeout_s: float = 600) -> Iterator[str]:
    """``python -m <module>`` serving gRPC on ``port`` with ``env`` over this environment; yields its target."""
    target = f"127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", module], env={**os.environ, "LOG_LEVEL": "WARNING", **env})
    try:
        deadline = time.monotonic() + timeout_s
        while not asyncio.run(check_health(target)):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not start")
            time.sleep(0.3)
        yield target
    finally:
        server.terminate()
        server.wait(60)
