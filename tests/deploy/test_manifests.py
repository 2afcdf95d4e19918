"""docker-compose.yml and the Helm chart render, and every service in them is built from its own Dockerfile."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from compose_spec import PyCompose

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "threadline"
SERVICES = ("gateway", "agent", "retrieval", "memory")
K8S_VERSION = "1.30.0"


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


def _interpolate(text: str) -> str:
    """${VAR:-default} as Compose reads it with VAR unset (it interpolates before it validates)."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", text)


def _compose() -> dict:
    # safe_load resolves the file's YAML merge keys (<<: *common-env) as Compose does.
    return yaml.safe_load(_interpolate((ROOT / "docker-compose.yml").read_text()))


def test_compose_file_is_valid_and_consistent() -> None:
    compose = _compose()
    # compose-spec parses strictly: an unknown key or a malformed value is an error.
    PyCompose.from_json(json.dumps(compose)).validate()
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                healthy = services[dependency].get("healthcheck") or _image_healthcheck(services[dependency])
                assert healthy, f"{name} waits for {dependency} to be healthy, but it has no health check"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"


def _image_healthcheck(service: dict) -> bool:
    """Our own images declare HEALTHCHECK in their Dockerfile."""
    build = service.get("build")
    return bool(build) and "HEALTHCHECK" in (ROOT / build["context"] / build["dockerfile"]).read_text()


def test_every_service_has_a_dockerfile_and_a_compose_entry() -> None:
    compose = _compose()
    for name in SERVICES:
        build = compose["services"][name]["build"]
        dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
        assert "USER 10001" in dockerfile, f"{name} runs as root"
        assert "HEALTHCHECK" in dockerfile, f"{name} has no health check"
    assert {"nats", "postgres", "redis", "otel-collector", "jaeger"} <= set(compose["services"])


def _render(helm: str, *values: str, sets: tuple[str, ...] = ()) -> list[dict]:
    args = [helm, "template", "t", str(CHART)]
    for name in values:
        args += ["-f", str(CHART / "ci" / name)]
    for item in sets:
        args += ["--set", item]
    subprocess.run([helm, "lint", "--strict", *args[3:]], check=True, capture_output=True)
    rendered = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.mark.parametrize("values", [(), ("scaled-values.yaml",), ("bundled-values.yaml",)])
def test_every_rendered_object_is_valid_kubernetes(helm: str, values: tuple[str, ...]) -> None:
    objects = _render(helm, *values)
    for obj in objects:
        # strict: a misspelt or misplaced field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    workloads = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "StatefulSet")}
    assert {f"t-{name}" for name in SERVICES} <= set(workloads)
    for workload in workloads.values():
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] not in SERVICES:
            continue
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"]
        assert container["livenessProbe"]


def test_each_service_scales_on_its_own(helm: str) -> None:
    objects = _render(helm, sets=("agent.replicas=5", "gateway.replicas=3"))
    replicas = {o["metadata"]["name"]: o["spec"].get("replicas") for o in objects if o["kind"] == "Deployment"}
    assert replicas == {"t-gateway": 3, "t-agent": 5, "t-memory": 2}
    scaled = _render(helm, "scaled-values.yaml")
    hpas = {
        o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
        for o in scaled
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert hpas == {"t-gateway": 12, "t-agent": 40}
    # Under an autoscaler the Deployment leaves replicas to it, or every upgrade would reset them.
    assert all(
        "replicas" not in o["spec"] for o in scaled if o["metadata"]["name"] in hpas and o["kind"] == "Deployment"
    )


def test_each_agent_pool_is_a_deployment_serving_its_graphs(helm: str) -> None:
    objects = _render(helm, "pools-values.yaml")
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    pools = {
        o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment" and "agent" in o["metadata"]["name"]
    }
    assert set(pools) == {"t-agent-chat", "t-agent-batch"}
    for name, graphs in (("t-agent-chat", "messages"), ("t-agent-batch", "tally")):
        container = pools[name]["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "AGENT_GRAPHS", "value": graphs} in container["env"]
        assert container["image"] == "registry.example.com/my-graphs:1.0"
        selector = pools[name]["spec"]["selector"]["matchLabels"]
        assert selector["threadline.dev/agent-pool"] == name.removeprefix("t-agent-")
    assert pools["t-agent-chat"]["spec"]["replicas"] == 3 and "replicas" not in pools["t-agent-batch"]["spec"]
    batch = pools["t-agent-batch"]["spec"]["template"]["spec"]["containers"][0]
    assert batch["resources"]["requests"]["cpu"] == "1"
    hpas = {
        o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert hpas == {"t-agent-batch": 30}
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "t-agent")
    assert config["data"]["THREADLINE_GRAPHS"] == "/graphs/langgraph.json"


def test_retrieval_keeps_its_index_on_a_persistent_volume(helm: str) -> None:
    objects = _render(helm, "scaled-values.yaml")
    (retrieval,) = [o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "t-retrieval"]
    (claim,) = retrieval["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    mounts = retrieval["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data"} in mounts


def test_secrets_are_referenced_never_inlined(helm: str) -> None:
    objects = _render(helm, "scaled-values.yaml")
    env = {
        o["metadata"]["name"]: {e["name"]: e for e in o["spec"]["template"]["spec"]["containers"][0]["env"]}
        for o in objects
        if o["kind"] == "Deployment"
    }
    assert env["t-memory"]["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "threadline-database"
    assert env["t-agent"]["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "threadline-openai"
    config = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    assert config["t-agent"]["OPENAI_BASE_URL"] == "http://vllm:8000/v1"
    assert config["t-agent"]["MEMORY_TARGET"] == "t-memory:50052"
    assert not any("DATABASE_URL" in data or "OPENAI_API_KEY" in data for data in config.values())


def test_the_dashboard_only_charts_metrics_the_services_export() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "threadline.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    charted = {re.sub(r"_(total|bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"threadline_\w+", e)}
    sources = "\n".join(p.read_text() for part in ("services", "libs") for p in (ROOT / part).rglob("*.py"))
    defined = set(re.findall(r'"(threadline_\w+?)(?:_total)?"', sources))
    assert charted, "the dashboard charts nothing"
    assert charted <= defined, f"charted but exported by no service: {sorted(charted - defined)}"
