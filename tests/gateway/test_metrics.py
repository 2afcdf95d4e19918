"""Prometheus /metrics: request latency by route template and runs by how they were started."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families


def _samples(gateway: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = gateway.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def test_requests_are_timed_by_route_template(gateway: TestClient) -> None:
    for _ in range(3):
        assert gateway.get("/api/v1/runs/no-such-run").status_code == 404
    gateway.get("/healthz")
    gateway.get("/nowhere/at/all")

    samples = _samples(gateway)

    run = (("method", "GET"), ("route", "/api/v1/runs/{run_id}"), ("status", "404"))
    assert samples[("threadline_gateway_request_seconds_count", run)] == 3
    assert (
        samples[
            ("threadline_gateway_request_seconds_count", (("method", "GET"), ("route", "/healthz"), ("status", "200")))
        ]
        == 1
    )
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert samples[("threadline_gateway_request_seconds_count", unmatched)] == 1
    # A raw path never becomes a label: that would grow the series without bound.
    assert not [k for k in samples if ("route", "/api/v1/runs/no-such-run") in k[1]]


def test_started_runs_are_counted_by_mode(gateway: TestClient) -> None:
    for _ in range(2):
        assert gateway.post("/api/v1/runs", json={"input": "count me"}).status_code == 202
    gateway.post("/api/v1/runs", json={"input": " "})  # refused: not a run

    samples = _samples(gateway)

    assert samples[("threadline_gateway_runs_started_total", (("mode", "background"),))] == 2
