"""docker-compose.yml and the Helm chart render, and every service in them is built from its own Dockerfile."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "threadline"
SERVICES = ("gateway", "agent", "retrieval", "memory")


# Development machines carry a helm getter in the workplace's shared/tools, beside the clone
# or at /work/shared when the clone lives elsewhere (as CI's does).
_HELM_GETTERS = [*(p / "shared" / "tools" / "get-helm" for p in ROOT.parents), Path("/work/shared/tools/get-helm")]


@pytest.fixture(scope="module")
def helm() -> str:
    """A real helm: $HELM, helm on PATH, or the workplace's shared/tools/get-helm."""
    found = os.environ.get("HELM") or shutil.which("helm")
    getter = next((g for g in _HELM_GETTERS if g.is_file()), None)
    if not found and getter:
        found = subprocess.run([str(getter)], check=True, capture_output=True, text=True).stdout.strip()
    assert found, "no helm binary: install helm or set HELM=/path/to/helm"
    return found


def test_every_service_has_a_dockerfile_and_a_compose_entry() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in SERVICES:
        build = compose["services"][name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert {"nats", "postgres", "redis"} <= set(compose["services"])


def test_chart_lints_and_renders_a_deployment_per_service(helm: str) -> None:
    subprocess.run([helm, "lint", str(CHART)], check=True, capture_output=True)
    rendered = subprocess.run(
        [helm, "template", "t", str(CHART), "--set", "agent.replicas=5"], check=True, capture_output=True, text=True
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {f"t-{name}" for name in SERVICES}
    assert deployments["t-agent"]["spec"]["replicas"] == 5
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["containers"][0]["resources"]["requests"]
