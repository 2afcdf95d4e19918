"""A load test of the reference's shape: ``hey -n 1000 -c 50`` on the question endpoint, mesh and monolith.

``python -m bench load`` embeds SciFact abstracts (the first 1,000; 200 with ``--quick``) into
the mesh, through its retrieval service, and into the monolith peer (``bench/peers/monolith.py``,
the same MiniLM int8 vectors), both up at once. Then, in rounds that alternate the two (the
first rotating), it points ``hey`` (a real HTTP load tool, Debian's package ``hey``) at
``POST /api/v1/query`` on the mesh and ``POST /query`` on the monolith with one question as the
body, as the reference does, and reads each request's time and status from hey's CSV output:
errors (a transport failure or a status other than 200), latency p50/p95/p99 and throughput
(answered requests over the time from the first request to the last answer).

The mesh runs without the answer cache (as ``./task up`` starts it): hey asks one question a
thousand times, and a cache would turn the test into a test of the cache. Writes
``bench/results/load.json``; the ratios that matter are taken within each round.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import scifact
from bench.end_to_end import _chunks, _ingest, save_knowledge_base, spread, start_monolith
from bench.mesh import running_mesh
from bench.postgres import fresh_database
from bench.stats import machine, percentiles
from bench.user_graph import rotated

RESULTS = Path(__file__).parent / "results" / "load.json"
TOOL = "hey"
SYSTEMS = ("mesh", "monolith")


class MissingTool(RuntimeError):
    """The HTTP load tool is not installed: the benchmark cannot run, and says what to install."""


@dataclass(frozen=True)
class Shape:
    requests: int
    concurrency: int
    rounds: int
    abstracts: int


def shape(quick: bool) -> Shape:
    if quick:
        return Shape(requests=100, concurrency=10, rounds=2, abstracts=200)
    return Shape(requests=1000, concurrency=50, rounds=3, abstracts=1000)


def require_tool(name: str = TOOL) -> str:
    """The path of ``hey``; a :class:`MissingTool` naming it and its package when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        raise MissingTool(
            f"bench/load.py needs the HTTP load tool {name!r}, which is not on PATH: "
            f"install it (Debian/Ubuntu: apt-get install -y {name})"
        )
    return path


def hey_command(tool: str, url: str, body: dict[str, Any], requests: int, concurrency: int) -> list[str]:
    # -t 0: no client timeout, so a slow answer counts as slow rather than as an error hey made up.
    load = [tool, "-n", str(requests), "-c", str(concurrency), "-t", "0", "-o", "csv"]
    return [*load, "-m", "POST", "-T", "application/json", "-d", json.dumps(body), url]


def summarize(csv_text: str, requests: int) -> dict[str, Any]:
    """hey's CSV (one row per answered request: seconds, ..., status, offset) as errors, latency and throughput.

    A request hey could not complete has no row: it is an error, as is any status but 200.
    """
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    answered = [(float(r["response-time"]), int(r["status-code"]), float(r["offset"])) for r in rows]
    ok = [seconds * 1000 for seconds, status, _ in answered if status == 200]
    span = max((offset + seconds for seconds, _, offset in answered), default=0.0)
    statuses: dict[str, int] = {}
    for _, status, _ in answered:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": requests,
        "errors": requests - len(ok),
        "statuses": statuses,
        "latency_ms": percentiles(ok) if ok else None,
        "throughput_qps": round(len(ok) / span, 2) if span > 0 else 0.0,
    }


def hey(tool: str, url: str, body: dict[str, Any], requests: int, concurrency: int) -> dict[str, Any]:
    """One run of ``hey`` against ``url``, summarised; raises if hey itself fails."""
    done = subprocess.run(
        hey_command(tool, url, body, requests, concurrency), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"hey failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return summarize(done.stdout, requests)


def pooled(shots: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's rounds: errors summed, the median round's p50/p95/p99 and throughput."""
    return {
        "requests": sum(s["requests"] for s in shots),
        "errors": sum(s["errors"] for s in shots),
        **{
            f"{q}_ms": round(statistics.median(s["latency_ms"][q] for s in shots if s["latency_ms"]), 2)
            for q in ("p50", "p95", "p99")
            if any(s["latency_ms"] for s in shots)
        },
        "throughput_qps": round(statistics.median(s["throughput_qps"] for s in shots), 2),
    }


def ratios(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The mesh over the monolith, per round (p50, p99 and throughput), as median, lowest and highest."""
    figures: dict[str, list[float]] = {"p50": [], "p99": [], "throughput": []}
    for shots in rounds:
        mesh, mono = shots["mesh"], shots["monolith"]
        if not (mesh["latency_ms"] and mono["latency_ms"] and mono["throughput_qps"]):
            continue
        for q in ("p50", "p99"):
            figures[q].append(mesh["latency_ms"][q] / mono["latency_ms"][q])
        figures["throughput"].append(mesh["throughput_qps"] / mono["throughput_qps"])
    return {figure: spread(values) for figure, values in figures.items() if values}


def run(quick: bool = False, plan: Shape | None = None) -> dict[str, Any]:
    tool = require_tool()  # before minutes of set-up
    plan = plan or shape(quick)
    started = time.monotonic()
    abstracts = scifact.abstracts()[: plan.abstracts]
    question = next(iter(scifact.test_claims().values()))
    with tempfile.TemporaryDirectory(prefix="threadline-load-") as scratch, ExitStack() as stack:
        kb_dir = Path(scratch) / "kb"
        save_knowledge_base(kb_dir, _chunks(abstracts))
        env = {
            "DATABASE_URL": fresh_database("threadline_bench_load_mesh"),
            "SEARCH_DEFAULT_MODE": "dense",  # the monolith's search: the same retrieval work in both
            "THREADLINE_SAMPLE_DIR": "",  # only the abstracts, as the monolith has (not docs/)
            "AGENT_ANSWER_CACHE_URL": "",
        }
        mesh = stack.enter_context(running_mesh(extra_env=env))
        asyncio.run(_ingest(mesh.retrieval_target, abstracts))
        targets = {
            "mesh": f"{mesh.url}/api/v1/query",
            "monolith": start_monolith(stack, kb_dir, "threadline_bench_load_mono") + "/query",
        }
        body = {"input": question}
        for url in targets.values():  # warm-up: models, connections, consumers
            hey(tool, url, body, 20, 2)
        rounds = []
        for round_no in range(plan.rounds):
            shots = {}
            for name in rotated(SYSTEMS, round_no):
                shots[name] = hey(tool, targets[name], body, plan.requests, plan.concurrency)
            rounds.append(shots)
    result = {
        "benchmark": "load",
        "command": f"hey -n {plan.requests} -c {plan.concurrency} -t 0 -m POST -T application/json -d '{{...}}' URL",
        "question": question,
        "knowledge_base": {"dataset": "BEIR SciFact corpus (the first abstracts)", "documents": len(abstracts)},
        "rounds": plan.rounds,
        "machine": machine(),
        "systems": {name: pooled([r[name] for r in rounds]) for name in SYSTEMS},
        "per_round": rounds,
        "mesh_over_monolith": ratios(rounds),
        "duration_s": round(time.monotonic() - started),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
