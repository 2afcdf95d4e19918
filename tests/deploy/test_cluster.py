"""Opt-in (-m deploy): the chart installed on the cluster named by KUBECONFIG, then each service scaled on its own."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.deploy.conftest import ROOT, Images, Kube
from tests.deploy.mesh_client import ask, index_document, read_stream, start_run, wait_until

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(3600)]
CHART = ROOT / "deploy" / "helm" / "threadline"


class Release:
    def __init__(self, kube: Kube, name: str) -> None:
        self.kube, self.name, self.namespace = kube, name, name

    def kubectl(self, *args: str, timeout: float = 900) -> str:
        run = subprocess.run(
            [self.kube.kubectl, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            env=self.kube.env(),
            timeout=timeout,
        )
        assert run.returncode == 0, f"kubectl {' '.join(args)}: {run.stderr}"
        return run.stdout

    def helm(self, *args: str, timeout: float = 1200) -> str:
        run = subprocess.run(
            [self.kube.helm, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            env=self.kube.env(),
            timeout=timeout,
        )
        assert run.returncode == 0, f"helm {' '.join(args)}: {run.stdout}\n{run.stderr}"
        return run.stdout

    def service_url(self, service: str, port: int) -> str:
        # Service addresses are routed from the host to the node's bridge (tools/local-cluster).
        return (
            f"http://{self.kubectl('get', 'svc', f'{self.name}-{service}', '-o', 'jsonpath={.spec.clusterIP}')}:{port}"
        )

    def pods(self, component: str) -> list[dict]:
        out = self.kubectl("get", "pods", "-l", f"app.kubernetes.io/component={component}", "-o", "json")
        return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]

    def rollout(self, kind: str, name: str) -> None:
        self.kubectl("rollout", "status", f"{kind}/{self.name}-{name}", "--timeout=600s")


def _values(images: Images) -> list[str]:
    small = "resources.requests.cpu=20m"
    return [
        "bundled.enabled=true",
        "bundled.persistence=false",  # the local cluster has no volume provisioner
        "retrieval.persistence.enabled=false",
        f"bundled.images.nats={images.offline['nats']}",
        f"bundled.images.postgres={images.offline['postgres']}",
        f"bundled.images.redis={images.offline['redis']}",
        "gateway.replicas=2",
        "agent.replicas=1",
        # memory under an HPA (autoscaling/v2beta2 on 1.20): without metrics it holds minReplicas.
        "memory.autoscaling.enabled=true",
        "memory.autoscaling.minReplicas=2",
        "memory.autoscaling.maxReplicas=3",
        *(f"{svc}.{small}" for svc in ("gateway", "agent", "retrieval", "memory")),
    ]


@pytest.fixture(scope="module")
def release(kube: Kube, images: Images) -> Iterator[Release]:
    rel = Release(kube, "tl" + uuid.uuid4().hex[:6])
    subprocess.run(
        [kube.kubectl, "create", "namespace", rel.namespace], check=True, env=kube.env(), capture_output=True
    )
    started = time.monotonic()
    try:
        sets = [arg for value in _values(images) for arg in ("--set", value)]
        rel.helm("install", rel.name, str(CHART), "--wait", "--timeout", "15m", *sets)
        rel.kubectl("wait", "--for=condition=Ready", "pods", "--all", "--timeout=600s")
        print(f"\nhelm install --wait: every pod Ready {time.monotonic() - started:.0f} s after the install began")
        yield rel
    finally:
        print(rel.kubectl("get", "pods,svc,hpa,pdb", "-o", "wide"))
        subprocess.run([kube.helm, "-n", rel.namespace, "uninstall", rel.name], env=kube.env(), capture_output=True)
        subprocess.run(
            [kube.kubectl, "delete", "namespace", rel.namespace, "--wait=false"], env=kube.env(), capture_output=True
        )


def test_the_chart_installs_and_answers_through_the_gateway_service(release: Release) -> None:
    manifest = release.helm("get", "manifest", release.name)
    served = release.kubectl("api-versions").split()
    hpa = "autoscaling/v2" if "autoscaling/v2" in served else "autoscaling/v2beta2"
    pdb = "policy/v1" if "policy/v1" in served else "policy/v1beta1"
    assert f"apiVersion: {hpa}\nkind: HorizontalPodAutoscaler" in manifest
    assert f"apiVersion: {pdb}\nkind: PodDisruptionBudget" in manifest
    print(f"the cluster serves {hpa} and {pdb}; the chart rendered those")
    assert len(release.pods("memory")) == 2, "the HPA holds memory at minReplicas"
    gateway = release.service_url("gateway", 8000)
    index_document(gateway)
    body = ask(gateway)
    print("answer through the gateway Service:", body["answer"][:200], [c["document_id"] for c in body["citations"]])
    out = release.helm("test", release.name, "--logs", timeout=600)
    assert "answered with citations" in out, out


def test_agents_scaled_to_three_each_take_runs(release: Release) -> None:
    release.kubectl("scale", "deployment", f"{release.name}-agent", "--replicas=3")
    release.rollout("deployment", "agent")
    release.kubectl(
        "wait", "--for=condition=Ready", "pods", "-l", "app.kubernetes.io/component=agent", "--timeout=300s"
    )
    gateway = release.service_url("gateway", 8000)
    pods = [p["metadata"]["name"] for p in release.pods("agent")]
    assert len(pods) == 3

    def runs_per_pod() -> dict[str, int]:
        return {pod: release.kubectl("logs", pod).count('"run finished"') for pod in pods}

    def spread() -> bool:
        # Several at once: each worker's pull request is waiting, and JetStream hands one run to each.
        threads = [threading.Thread(target=ask, args=(gateway,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = runs_per_pod()
        print("runs finished per agent pod:", counts)
        return all(counts.values())

    wait_until(spread, 900, "runs on every one of the three agent pods", every_s=0)


def test_a_stream_resumes_on_another_gateway_replica(release: Release) -> None:
    release.kubectl("scale", "deployment", f"{release.name}-gateway", "--replicas=3")
    release.rollout("deployment", "gateway")
    ips = [p["status"]["podIP"] for p in release.pods("gateway")]
    assert len(set(ips)) == 3
    first, second = (f"http://{ip}:8000" for ip in ips[:2])
    run_id = start_run(first)
    head = read_stream(first, run_id, limit=1)
    tail = read_stream(second, run_id, last_event_id=head[-1]["id"])
    seqs = [int(e["id"]) for e in head + tail if "id" in e]
    print(f"run {run_id}: {len(head)} event(s) from {ips[0]}, then {len(tail)} from {ips[1]}; seqs {seqs}")
    assert seqs == sorted(set(seqs)), "an event repeated or came out of order across replicas"
    assert tail and tail[-1]["event"] == "end", tail


def test_rolling_restarts_fail_no_question(release: Release) -> None:
    gateway = release.service_url("gateway", 8000)
    results: list[str] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                ask(gateway)
                results.append("ok")
            except Exception as exc:
                results.append(f"failed: {exc!r}"[:300])

    askers = [threading.Thread(target=keep_asking) for _ in range(2)]
    for thread in askers:
        thread.start()
    try:
        for name in ("gateway", "agent", "memory"):
            started = time.monotonic()
            release.kubectl("rollout", "restart", f"deployment/{release.name}-{name}")
            release.rollout("deployment", name)
            print(f"rollout restart of {name}: {time.monotonic() - started:.0f} s, {len(results)} questions so far")
    finally:
        stop.set()
        for thread in askers:
            thread.join()
    failed = [r for r in results if r != "ok"]
    print(f"questions during the three rollouts: {len(results)}, failed: {len(failed)}")
    assert results and not failed, failed
