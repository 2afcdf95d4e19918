"""The mesh for end-to-end tests: four service processes on the machine's real NATS and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import NATS_URL, REDIS_URL, free_port
from tests.e2e.mesh import MeshProcess, launcher_args
from tests.e2e.otlp_receiver import OtlpReceiver


@dataclass
class Mesh:
    url: str
    memory_target: str
    retrieval_target: str
    otlp: OtlpReceiver
    process: MeshProcess


@pytest.fixture(scope="session")
def mesh(session_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    data_dir: Path = tmp_path_factory.mktemp("mesh")
    ports = {name: free_port() for name in ("GATEWAY_PORT", "RETRIEVAL_PORT", "MEMORY_PORT")}
    with OtlpReceiver() as otlp:
        env = {
            **os.environ,
            **{k: str(v) for k, v in ports.items()},
            "NATS_URL": NATS_URL,
            "NATS_NAMESPACE": "e2e" + os.urandom(4).hex(),
            "DATABASE_URL": session_database,
            "REDIS_URL": REDIS_URL,
            "THREADLINE_DATA_DIR": str(data_dir),
            "LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        env.pop("OPENAI_API_KEY", None)
        env.pop("OPENAI_BASE_URL", None)
        process = MeshProcess(launcher_args(), env)
        try:
            process.wait_ready(timeout=240)
            yield Mesh(
                url=f"http://127.0.0.1:{ports['GATEWAY_PORT']}",
                memory_target=f"127.0.0.1:{ports['MEMORY_PORT']}",
                retrieval_target=f"127.0.0.1:{ports['RETRIEVAL_PORT']}",
                otlp=otlp,
                process=process,
            )
        finally:
            process.interrupt()


@pytest.fixture
def client(mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.url, timeout=60) as client:
        yield client
