"""The end-to-end benchmark's pure parts: the per-round ratios and their spread, the pooled figures."""

from __future__ import annotations

from typing import Any

from bench import end_to_end


def _figures(p50: float, qps: float, first_token: float) -> dict[str, Any]:
    request = {"concurrency": 1, "latency_ms": {"p50": p50}, "throughput_qps": qps}
    stream = {"concurrency": 1, "latency_ms": {"p50": p50}, "first_token_ms": {"p50": first_token}}
    return {"request": [request], "stream": [stream]}


def test_ratios_are_taken_in_each_round_and_given_as_their_median_and_range() -> None:
    rounds = [
        {"mesh": _figures(60, 15, 30), "monolith": _figures(40, 20, 20)},
        {"mesh": _figures(50, 18, 30), "monolith": _figures(50, 18, 20)},
        {"mesh": _figures(90, 10, 30), "monolith": _figures(45, 22, 15)},
    ]
    ratios = end_to_end.round_ratios(rounds)
    [row] = ratios["mesh_over_monolith"]
    assert row["concurrency"] == 1
    assert row["request_p50"] == {"median": 1.5, "min": 1.0, "max": 2.0, "rounds": 3}
    assert row["throughput"] == {"median": 0.75, "min": 0.45, "max": 1.0, "rounds": 3}
    assert row["first_token_p50"]["median"] == 1.5 and row["first_token_p50"]["max"] == 2.0


def test_a_systems_batches_pool_into_one_summary() -> None:
    batches = [
        {"latencies": [10.0, 20.0], "first_tokens": [], "seconds": 1.0},
        {"latencies": [30.0, 40.0], "first_tokens": [], "seconds": 3.0},
    ]
    summary = end_to_end._summary(8, batches)
    assert summary["concurrency"] == 8 and summary["latency_ms"]["n"] == 4
    assert summary["throughput_qps"] == 1.0  # 4 questions in 4 s
    assert "first_token_ms" not in summary
