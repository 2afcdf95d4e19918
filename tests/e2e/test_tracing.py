"""One question is one trace: spans from all four services, each under the hop that caused it."""

from __future__ import annotations

import os
import time

import httpx

from tests.e2e.conftest import Mesh
from tests.e2e.otlp_receiver import ReceivedSpan

SERVER, CONSUMER = 2, 5  # OTLP SpanKind values


def _wait_for_trace(mesh: Mesh, trace_id: str, services: set[str], timeout: float = 20.0) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = mesh.otlp.trace(trace_id)
        if services <= {s.service for s in spans}:
            time.sleep(1.0)  # let the last batches of the run land too
            return mesh.otlp.trace(trace_id)
        time.sleep(0.2)
    return mesh.otlp.trace(trace_id)


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    chain = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


def test_one_question_is_one_trace_across_all_services(client: httpx.Client, mesh: Mesh) -> None:
    trace_id = os.urandom(16).hex()
    caller_span = os.urandom(8).hex()
    reply = client.post(
        "/api/v1/query",
        json={"input": "How are runs kept durable?"},
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert reply.status_code == 200, reply.text

    spans = _wait_for_trace(mesh, trace_id, {"gateway", "agent", "retrieval", "memory"})
    assert {s.service for s in spans} >= {"gateway", "agent", "retrieval", "memory"}, spans
    by_id = {s.span_id: s for s in spans}

    gateway_root = next(s for s in spans if s.service == "gateway" and s.kind == SERVER)
    assert gateway_root.parent_span_id == caller_span

    run = next(s for s in spans if s.service == "agent" and s.kind == CONSUMER)
    assert gateway_root in _ancestors(run, by_id)

    for service in ("retrieval", "memory"):
        server_spans = [s for s in spans if s.service == service and s.kind == SERVER]
        assert server_spans, f"no {service} server span"
        for span in server_spans:
            chain = _ancestors(span, by_id)
            assert gateway_root in chain
            if "AssistantService" in span.name:  # the gateway resolves the run's assistant before it submits
                assert run not in chain
                continue
            assert run in chain, f"{service} span {span.name} is not under the agent's run span"

    # Inside the run: a span per graph node, tool call and model call, the model's with its token counts.
    inside = {s.name: s for s in spans if s.service == "agent" and run in _ancestors(s, by_id)}
    assert {"node agent", "node tools", "tool search_knowledge_base"} <= set(inside), sorted(inside)
    model_calls = [s for name, s in inside.items() if name.startswith("chat ")]
    assert model_calls and all(s.attributes.get("gen_ai.usage.output_tokens", 0) > 0 for s in model_calls)
    assert inside["node tools"] in _ancestors(inside["tool search_knowledge_base"], by_id)

    # Below the servers: the query's embedding and the index search, and each checkpoint write to the database.
    below = {s.name: s for s in spans if s.service in ("retrieval", "memory") and s.kind != SERVER}
    assert {"embed query", "hybrid search", "postgresql put", "postgresql put_writes"} <= set(below), sorted(below)
    assert below["hybrid search"].attributes["retrieval.chunks"] > 0
    cache_reads = [s for s in spans if s.service == "memory" and s.attributes.get("db.system") == "redis"]
    assert cache_reads and all(run in _ancestors(s, by_id) for s in cache_reads), sorted(below)
    search_server = by_id[below["hybrid search"].parent_span_id]
    assert search_server.service == "retrieval" and search_server.kind == SERVER
