"""Opt-in (-m deploy): the images built, then docker-compose brings the stack up, gated on health checks."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import httpx
import pytest

from tests.conftest import free_port
from tests.deploy.conftest import BASE_IMAGE, ROOT, SERVICES, Images
from tests.deploy.mesh_client import ask, index_document, wait_until

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(3600)]


def test_images_run_as_non_root_and_are_reasonably_small(docker: str, images: Images) -> None:
    print("\nimage build seconds and sizes:", json.dumps(images.built, indent=1))
    for name in SERVICES:
        image = images.service(name)
        assert image in images.built, f"tools/images.sh did not build {image}"
        config = json.loads(subprocess.check_output([docker, "image", "inspect", image]))[0]["Config"]
        assert config["User"] == "10001" and config["Healthcheck"], f"{image}: {config}"
        # No torch, no CUDA: the default install of every service is well under a gigabyte.
        assert images.built[image][1] < 1000, f"{image} is {images.built[image][1]} MB"
    # It starts fast: the package imports (precompiled) take seconds, not a minute.
    started = time.monotonic()
    subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--network=none",
            images.service("retrieval"),
            "python",
            "-c",
            "import threadline_retrieval.server",
        ],
        check=True,
    )
    print(f"retrieval imports in {time.monotonic() - started:.1f} s")


def _offline() -> bool:
    """Offline compose (packages, no registry) when asked, or when the local base image is what there is."""
    wanted = os.environ.get("COMPOSE_OFFLINE")
    if wanted is not None:
        return wanted == "1"
    return subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode == 0


def test_compose_brings_the_stack_up_and_answers(compose: list[str], images: Images) -> None:
    files = ["-f", "docker-compose.yml"] + (["-f", "docker-compose.offline.yml"] if _offline() else [])
    project = "tldeploy" + uuid.uuid4().hex[:6]
    ports = {name: free_port() for name in ("GATEWAY", "PROMETHEUS", "GRAFANA", "JAEGER")}
    env = {**os.environ, **{f"{name}_PUBLISH_PORT": str(port) for name, port in ports.items()}}
    cmd = [*compose, "-p", project, *files]
    started = time.monotonic()
    try:
        up = subprocess.run([*cmd, "up", "-d"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert up.returncode == 0, f"docker-compose up failed:\n{up.stdout}\n{up.stderr}"

        def all_healthy() -> bool:
            ids = subprocess.check_output([*cmd, "ps", "-q"], cwd=ROOT, env=env, text=True).split()
            states = json.loads(subprocess.check_output(["docker", "inspect", *ids]))
            health = {s["Name"]: (s["State"].get("Health") or {}).get("Status", s["State"]["Status"]) for s in states}
            print(health)
            return all(status in ("healthy", "running") for status in health.values()) and all(
                status == "healthy" for name, status in health.items() if any(svc in name for svc in SERVICES)
            )

        wait_until(all_healthy, 600, "every compose service healthy", every_s=5)
        print(f"compose: every service healthy {time.monotonic() - started:.0f} s after `up -d`")
        gateway = f"http://127.0.0.1:{ports['GATEWAY']}"
        index_document(gateway)
        answer = ask(gateway)
        print("answer:", answer["answer"][:200], [c["document_id"] for c in answer["citations"]])

        def every_service_scraped() -> bool:
            reply = httpx.get(f"http://127.0.0.1:{ports['PROMETHEUS']}/api/v1/targets", timeout=5).json()
            up_jobs = {t["labels"]["job"] for t in reply["data"]["activeTargets"] if t["health"] == "up"}
            return set(SERVICES) <= up_jobs

        wait_until(every_service_scraped, 120, "Prometheus scraping gateway, agent, retrieval and memory")
    finally:
        logs = subprocess.run([*cmd, "logs", "--tail", "20"], cwd=ROOT, env=env, capture_output=True, text=True)
        print(logs.stdout[-6000:])
        subprocess.run([*cmd, "down", "-v", "--remove-orphans"], cwd=ROOT, env=env, capture_output=True)
