"""The benchmark report reads every result file, whatever its shape, into one table per benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report


def test_every_result_becomes_a_table_with_its_machine(tmp_path: Path) -> None:
    memory = {
        "benchmark": "memory_latency",
        "machine": {"date": "2026-11-24T20:00:00+00:00", "cores": 2, "memory_gib": 23.5, "python": "3.11.7"},
        "put_ms": {"grpc": {"n": 200, "p50": 1.5, "p95": 2.0, "p99": 3.25, "mean": 1.6}},
        "levels": [{"concurrency": 8, "throughput_qps": 120.5}],
        "ratio": 1.8,
    }
    (tmp_path / "memory_latency.json").write_text(json.dumps(memory))
    (tmp_path / "agent.json").write_text(json.dumps({"runs": [{"x": 1}, {"x": 2}], "modes": ["a", "b"]}))

    text = report.write(tmp_path).read_text()

    assert "## memory_latency\n\nMeasured 2026-11-24T20:00:00+00:00 on 2 cores, 23.5 GiB" in text
    assert "| `put_ms.grpc` | 1.5 / 2.0 / 3.25 (n=200) |" in text
    assert "| `levels[concurrency=8].throughput_qps` | 120.5 |" in text
    assert "| `ratio` | 1.8 |" in text
    assert "## agent" in text and "| `runs[1].x` | 2 |" in text and "| `modes` | a, b |" in text
    assert text.index("## agent") < text.index("## memory_latency")
