"""Where one question's time goes: a per-hop budget from the traces the mesh exports, and profiles.

``python -m bench hops`` starts the mesh as ``./task up`` does (docs/ as the knowledge base, the
offline answerer, memory on SQLite), every service exporting its spans to an OTLP receiver in this
process (``tests/e2e/otlp_receiver.py``, the one the tracing test reads). It asks questions one at
a time through ``POST /api/v1/query``, each under a trace id of its own, and turns each question's
spans into hops (``HOPS``): per hop its p50 over the questions, how often a question makes it, and
that p50 as a share of the question's p50 at the gateway. Hops nest (a checkpoint call is inside the
agent's run) and some overlap (writes go on in the background while the graph runs), so the shares
do not add up to 100%: read the table top down.

Then it puts the mesh under load (``LOAD_CLIENTS`` clients) while py-spy samples the agent,
memory and gateway processes (``--gil``: only samples holding the GIL, that is CPU the process
spends in Python), and names each one's top functions by the samples they are on (own time) and
under (the service's own modules, inclusive).
Results in bench/results/hops.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.mesh import running_mesh
from bench.query_latency import QUESTIONS
from bench.stats import machine
from tests.e2e.otlp_receiver import OtlpReceiver, ReceivedSpan

RESULTS = Path(__file__).parent / "results" / "hops.json"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP SpanKind values
LOAD_CLIENTS = 4
PROFILED = {"agent": "threadline_agent", "memory": "threadline_memory", "gateway": "threadline_gateway"}


class _Trace:
    """One question's spans, with what the hops are measured between."""

    def __init__(self, spans: list[ReceivedSpan]) -> None:
        self.spans = spans
        self.root = next(s for s in spans if s.service == "gateway" and s.kind == SERVER)
        self.run = next(s for s in spans if s.service == "agent" and s.name == "run")
        self.publish = next(s for s in spans if s.service == "gateway" and s.name.startswith("publish runs.requested"))
        self.end = next(s for s in spans if s.service == "agent" and s.name == "publish run end")

    def named(self, service: str, test: Callable[[ReceivedSpan], bool]) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.service == service and test(s)]


def _gap_ms(start_ns: int, end_ns: int) -> float:
    return (end_ns - start_ns) / 1e6


def _spans(service: str, test: Callable[[ReceivedSpan], bool]) -> Callable[[_Trace], tuple[float, int]]:
    def measure(t: _Trace) -> tuple[float, int]:
        found = t.named(service, test)
        return sum(s.duration_ms for s in found), len(found)

    return measure


def _gap(start: Callable[[_Trace], int], end: Callable[[_Trace], int]) -> Callable[[_Trace], tuple[float, int]]:
    return lambda t: (_gap_ms(start(t), end(t)), 1)


def _rpc(method: str) -> Callable[[ReceivedSpan], bool]:
    return lambda s: s.kind == CLIENT and s.name.endswith(method)


# (hop, how it is measured): spans' summed durations, or the time between two spans' edges.
HOPS: list[tuple[str, Callable[[_Trace], tuple[float, int]]]] = [
    ("question at the gateway (total)", lambda t: (t.root.duration_ms, 1)),
    (
        "gateway before the publish: parse, auth, rate limit, audit, assistant",
        _gap(lambda t: t.root.start_ns, lambda t: t.publish.start_ns),
    ),
    ("  of which: assistant lookup (gRPC to memory)", _spans("gateway", _rpc("GetAssistant"))),
    ("JetStream: the gateway's publish until its ack", lambda t: (t.publish.duration_ms, 1)),
    (
        "JetStream: the gateway's publish to the worker's pickup",
        _gap(lambda t: t.publish.start_ns, lambda t: t.run.start_ns),
    ),
    ("agent: the run, pickup to ack", lambda t: (t.run.duration_ms, 1)),
    ("  checkpoint read (GetTuple)", _spans("agent", _rpc("GetTuple"))),
    (
        "  checkpoint writes (Put, PutWrites, PutBatch; in the background)",
        _spans("agent", lambda s: s.kind == CLIENT and s.name.rsplit("/", 1)[-1] in ("Put", "PutWrites", "PutBatch")),
    ),
    (
        "    of which: each write at the storage (memory's put, put_writes spans)",
        _spans("memory", lambda s: s.name.split(" ", 1)[-1] in ("put", "put_writes")),
    ),
    ("  graph steps (node spans)", _spans("agent", lambda s: s.name.startswith("node "))),
    ("    retrieval (Search over gRPC)", _spans("agent", _rpc("Search"))),
    ("      of which: embedding the question", _spans("retrieval", lambda s: s.name == "embed query")),
    ("    model (offline answerer)", _spans("agent", lambda s: s.name.startswith("chat "))),
    ("  run end on JetStream, with its ack", _spans("agent", lambda s: s.name == "publish run end")),
    ("  ack of the run message", _spans("agent", lambda s: s.name == "ack run")),
    # The gateway hears the end event as JetStream stores it, before the agent has the stream's ack.
    (
        "run end published to the gateway's reply: event back, response",
        _gap(lambda t: t.end.start_ns, lambda t: t.root.end_ns),
    ),
]


def _ask(client: httpx.Client, question: str) -> str:
    trace_id = os.urandom(16).hex()
    reply = client.post(
        "/api/v1/query", json={"input": question}, headers={"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}
    )
    reply.raise_for_status()
    return trace_id


def _complete(otlp: OtlpReceiver, trace_ids: list[str], timeout_s: float = 30) -> list[_Trace]:
    """Each question's trace, once its spans have all been exported (the processors batch them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return [_Trace(otlp.trace(t)) for t in trace_ids]
        except StopIteration:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def budget(traces: list[_Trace]) -> list[dict[str, Any]]:
    """The per-hop table: p50 ms, calls per question, share of the question's p50."""
    total = statistics.median(t.root.duration_ms for t in traces)
    rows = []
    for hop, measure in HOPS:
        measured = [measure(t) for t in traces]
        p50 = statistics.median(ms for ms, _ in measured)
        rows.append(
            {
                "hop": hop,
                "p50_ms": round(p50, 2),
                "per_question": round(statistics.mean(n for _, n in measured), 2),
                "share_of_p50": round(p50 / total, 3),
            }
        )
    return rows


def _pids(marker: str) -> dict[str, int]:
    """The mesh's service processes, told apart from anyone else's by the marker in their environment."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() not in environ:
            continue
        for service, module in PROFILED.items():
            if module.encode() in cmdline:
                found[service] = int(proc.name)
    return found


def _load(url: str, seconds: float, stop: threading.Event, counts: Counter) -> None:
    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                reply = http.post("/api/v1/query", json={"input": QUESTIONS[n % len(QUESTIONS)]})
                counts[reply.status_code] += 1
                n += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()


def _top(collapsed: Path, module: str, n: int = 8) -> dict[str, Any]:
    """Top functions of a py-spy ``raw`` (collapsed stacks) profile: own samples, and inclusive ones
    for the service's own code."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[_frame(frames[-1])] += samples
        # The service's own code, below its entry point (which every sample is under).
        for frame in {_frame(f) for f in frames if _own(f, module)}:
            inclusive[frame] += samples
    share = lambda c: [(name, round(k / max(total, 1), 3)) for name, k in c.most_common(n)]  # noqa: E731
    return {"samples": total, "top_own": share(own), "top_inclusive_own_code": share(inclusive)}


def _own(frame: str, module: str) -> bool:
    """A frame of the service's own code, below its entry point (which every sample is under)."""
    return (module in frame or "threadline/" in frame) and not any(e in frame for e in ("__main__", "lifecycle.py"))


def _frame(frame: str) -> str:
    """``function (path/to/module.py:line)`` as ``function (module.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').split(':')[0]).name})"


def profile(url: str, marker: str, seconds: float, out_dir: Path) -> dict[str, Any]:
    """py-spy on each service while clients keep the mesh busy."""
    pids = _pids(marker)
    spy = str(Path(sys.executable).with_name("py-spy"))
    recorders = {
        service: subprocess.Popen(
            [
                spy,
                "record",
                "--nonblocking",
                "--format",
                "raw",
                "-d",
                str(int(seconds)),
                "-r",
                "100",
                "-p",
                str(pid),
                "-o",
                str(out_dir / f"{service}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for service, pid in pids.items()
    }
    counts: Counter[int] = Counter()
    started = time.monotonic()
    _load(url, seconds, threading.Event(), counts)
    elapsed = time.monotonic() - started
    for recorder in recorders.values():
        recorder.wait(60)
    profiles = {
        service: _top(out_dir / f"{service}.txt", PROFILED[service])
        for service in recorders
        if (out_dir / f"{service}.txt").exists()
    }
    return {"clients": LOAD_CLIENTS, "seconds": round(elapsed, 1), "replies": dict(counts), "profiles": profiles}


def run(quick: bool = False) -> dict[str, Any]:
    questions, load_s = (10, 5.0) if quick else (100, 20.0)
    marker = "hops-" + uuid.uuid4().hex
    with OtlpReceiver() as otlp, tempfile.TemporaryDirectory(prefix="threadline-hops-") as out:
        # Exported every 200 ms rather than 5 s: the spans are here soon after their question.
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200", "HOPS_MARK": marker}
        with running_mesh(timeout_s=600, extra_env=env) as mesh, httpx.Client(base_url=mesh.url, timeout=60) as client:
            for n in range(10):  # warm-up: connections, caches, the first embedding
                _ask(client, QUESTIONS[n % len(QUESTIONS)])
            trace_ids = [_ask(client, QUESTIONS[n % len(QUESTIONS)]) for n in range(questions)]
            traces = _complete(otlp, trace_ids)
            under_load = profile(mesh.url, marker, load_s, Path(out))
    result = {
        "benchmark": "hops",
        "machine": machine(),
        "questions": questions,
        "hops": budget(traces),
        "under_load": under_load,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
