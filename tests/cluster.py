"""The mesh as separately controllable OS processes, so a test can kill and restart any one of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from threadline.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when a machine dies."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait: the graceful path."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Cluster:
    """NATS (own server, JetStream on file storage), Redis (own server, so a test may kill it), memory,
    retrieval, ``agents`` workers, ``gateways`` gateways.

    Processes are named ``nats``, ``redis``, ``memory``, ``retrieval``, ``agent-1``... and ``gateway-1``...
    """

    workdir: Path
    database_url: str
    agents: int = 2
    gateways: int = 1
    namespace: str = field(default_factory=lambda: "rel" + os.urandom(4).hex())
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nats_port = free_port()
        redis_port = free_port()
        retrieval, memory = free_port(), free_port()
        self.retrieval_target = f"127.0.0.1:{retrieval}"
        gateway_ports = [free_port() for _ in range(self.gateways)]
        self.urls = [f"http://127.0.0.1:{port}" for port in gateway_ports]
        self.url = self.urls[0]
        self.metrics_urls = {f"agent-{n}": f"http://127.0.0.1:{free_port()}/metrics" for n in range(1, self.agents + 1)}
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_"))},
            "NATS_URL": self.nats_url,
            "NATS_NAMESPACE": self.namespace,
            "RETRIEVAL_TARGET": self.retrieval_target,
            "MEMORY_TARGET": f"127.0.0.1:{memory}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        py = sys.executable
        nats_server = str(Path(py).parent / "nats-server")
        specs = {
            "nats": (
                [nats_server, "-a", "127.0.0.1", "-p", str(self.nats_port), "-js", "-sd", str(self.workdir / "nats")],
                {},
            ),
            # A cache and rate-limit store only: nothing in it may be needed to finish a run.
            "redis": (
                ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                {},
            ),
            "memory": (
                [py, "-m", "threadline_memory"],
                {"MEMORY_PORT": str(memory), "DATABASE_URL": self.database_url},
            ),
            "retrieval": (
                [py, "-m", "threadline_retrieval"],
                {"RETRIEVAL_PORT": str(retrieval), "RETRIEVAL_DATA_DIR": str(self.workdir / "retrieval")},
            ),
        }
        for name, url in self.metrics_urls.items():
            port = url.rsplit(":", 1)[1].split("/")[0]
            env = {"AGENT_HEARTBEAT_FILE": str(self.workdir / name), "AGENT_METRICS_PORT": port}
            specs[name] = ([py, "-m", "threadline_agent"], env)
        for n, port in enumerate(gateway_ports, 1):
            specs[f"gateway-{n}"] = ([py, "-m", "threadline_gateway"], {"GATEWAY_PORT": str(port)})
        for name, (args, env) in specs.items():
            self.processes[name] = Process(name, args, {**base, **env}, self.workdir / f"{name}.log")

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    def start(self) -> None:
        for process in self.processes.values():
            process.start()
        self.wait_ready()

    def wait_ready(self, timeout: float = 180) -> None:
        """Until the first gateway's /readyz reports every part (NATS, memory, retrieval, agents) up."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            for process in self.processes.values():
                if process.proc is not None and process.proc.poll() not in (None, -9):
                    raise RuntimeError(f"{process.name} exited: {process.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ready")
            time.sleep(0.5)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=3) as reply:
                return json.load(reply)["status"] == "ready"
        except (OSError, ValueError):
            return False

    async def load_docs(self, tenant: str = "default") -> None:
        """The repository's docs/ as the tenant's knowledge base, as ``./task up`` loads it."""
        documents = [
            retrieval_pb2.Document(id=p.name, text=p.read_text(), content_type="text/markdown")
            for p in sorted((ROOT / "docs").glob("*.md"))
        ]
        async with grpc.aio.insecure_channel(self.retrieval_target) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            await stub.Ingest(retrieval_pb2.IngestRequest(tenant_id=tenant, documents=documents), timeout=120)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.stop()
