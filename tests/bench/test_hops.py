"""The per-hop budget's arithmetic on a made-up trace, and the profile's top functions on a made-up profile."""

from __future__ import annotations

from pathlib import Path

from bench import hops
from tests.e2e.otlp_receiver import ReceivedSpan

MS = 1_000_000


def _span(service: str, name: str, kind: int, start_ms: float, end_ms: float) -> ReceivedSpan:
    return ReceivedSpan(service, name, "t", name, "", kind, {}, int(start_ms * MS), int(end_ms * MS))


def test_a_question_s_hops_are_measured_between_its_spans() -> None:
    spans = [
        _span("gateway", "POST /api/v1/query", hops.SERVER, 0, 40),
        _span("gateway", "publish runs.requested", hops.PRODUCER, 5, 7),
        _span("agent", "run", hops.CONSUMER, 6, 36),
        _span("agent", "/threadline.memory.v1.CheckpointService/GetTuple", hops.CLIENT, 6, 8),
        _span("agent", "/threadline.memory.v1.CheckpointService/PutBatch", hops.CLIENT, 9, 12),
        _span("agent", "/threadline.memory.v1.CheckpointService/PutBatch", hops.CLIENT, 20, 22),
        _span("agent", "node count", 1, 8, 18),
        _span("agent", "publish run end", hops.PRODUCER, 33, 35),
    ]
    rows = {row["hop"].strip(): row for row in hops.budget([hops._Trace(spans)])}
    assert rows["question at the gateway (total)"]["p50_ms"] == 40
    assert rows["gateway before the publish: parse, auth, rate limit, audit, assistant"]["p50_ms"] == 5
    assert rows["JetStream: the gateway's publish to the worker's pickup"]["p50_ms"] == 1
    writes = rows["checkpoint writes (Put, PutWrites, PutBatch; in the background)"]
    assert (writes["p50_ms"], writes["per_question"]) == (5, 2)
    assert rows["agent: the run, pickup to ack"]["share_of_p50"] == 0.75
    assert rows["run end published to the gateway's reply: event back, response"]["p50_ms"] == 7
    assert rows["retrieval (Search over gRPC)"]["per_question"] == 0


def test_a_profile_s_top_functions_are_its_most_sampled(tmp_path: Path) -> None:
    profile = tmp_path / "agent.txt"
    profile.write_text(
        "<module> (threadline_agent/__main__.py:40);execute_run (threadline_agent/worker/execution.py:120);"
        "dumps (json/__init__.py:231) 3\n"
        "<module> (threadline_agent/__main__.py:40);select (selectors.py:468) 1\n"
    )
    top = hops._top(profile, "threadline_agent")
    assert top["samples"] == 4
    assert top["top_own"][0] == ("dumps (__init__.py)", 0.75)
    assert top["top_inclusive_own_code"] == [("execute_run (execution.py)", 0.75)]
