"""The load test's parts: the tool it needs, hey run for real against a small HTTP server, its summary."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import load


class _Answers(BaseHTTPRequestHandler):
    """Answers a question with 200, and one whose input says "fail" with 503."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = 503 if body["input"] == "fail" else 200
        payload = json.dumps({"answer": "yes"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/query"
    httpd.shutdown()
    httpd.server_close()


def test_a_missing_load_tool_is_named_with_its_package() -> None:
    with pytest.raises(load.MissingTool, match=r"'hey-missing'.*apt-get install -y hey-missing"):
        load.require_tool("hey-missing")


def test_hey_loads_a_server_and_its_answers_are_counted(server: str) -> None:
    tool = load.require_tool()  # the machine's hey: CI installs it, as the benchmark needs it
    ok = load.hey(tool, server, {"input": "How are runs kept?"}, 40, 4)
    assert (ok["requests"], ok["errors"], ok["statuses"]) == (40, 0, {"200": 40})
    assert ok["latency_ms"]["n"] == 40 and ok["throughput_qps"] > 0
    failing = load.hey(tool, server, {"input": "fail"}, 10, 2)
    assert (failing["errors"], failing["statuses"], failing["latency_ms"]) == (10, {"503": 10}, None)


def test_a_request_hey_could_not_complete_is_an_error() -> None:
    csv_text = (
        "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset\n"
        "0.0100,0.001,0,0,0.009,0,200,0.000\n"
        "0.0300,0.001,0,0,0.029,0,200,0.010\n"
        "0.0200,0.001,0,0,0.019,0,500,0.020\n"
    )
    summary = load.summarize(csv_text, requests=4)
    assert summary["errors"] == 2  # one 500, one without a row
    assert summary["statuses"] == {"200": 2, "500": 1}
    assert (summary["latency_ms"]["p50"], summary["latency_ms"]["n"]) == (30.0, 2)
    assert summary["throughput_qps"] == 50.0  # 2 answered in the 0.04 s from the first request to the last answer


def test_the_mesh_over_the_monolith_is_the_median_of_the_rounds_ratios() -> None:
    def shot(p50: float, qps: float) -> dict[str, object]:
        latency = {"p50": p50, "p95": p50, "p99": 2 * p50}
        return {"requests": 10, "errors": 0, "latency_ms": latency, "throughput_qps": qps}

    rounds = [
        {"mesh": shot(20, 50), "monolith": shot(10, 100)},
        {"mesh": shot(30, 100), "monolith": shot(10, 100)},
        {"mesh": shot(11, 100), "monolith": shot(10, 50)},
    ]
    ratios = load.ratios(rounds)
    assert ratios["p50"] == {"median": 2.0, "min": 1.1, "max": 3.0, "rounds": 3}
    assert ratios["throughput"] == {"median": 1.0, "min": 0.5, "max": 2.0, "rounds": 3}
    assert load.pooled([r["mesh"] for r in rounds])["p50_ms"] == 20.0
