"""Questions end to end on a 10k-chunk knowledge base: the mesh next to a monolith and ``langgraph dev``.

``python -m bench end_to_end`` chunks the 5,183 SciFact abstracts as the retrieval service
does (1,000 characters, 150 overlap: 10,959 chunks), then measures three systems, all up at
once and taking turns in rounds (the order rotating, so a noisy machine weighs on all alike),
each answering the SciFact test claims with the same graph, the same embedder (the retrieval
service's default, MiniLM on ONNX Runtime int8) and the offline extractive answerer:

- the mesh as ``./task up`` starts it, with the memory service on PostgreSQL and dense search as
  the peers have (the default, hybrid, adds a BM25 pass); request-response
  through ``POST /api/v1/query`` and streaming over the WebSocket ``/api/v1/ws``;
- the monolith a user would otherwise write (``bench/peers/monolith.py``): one FastAPI process,
  in-process FAISS, langgraph's ``AsyncPostgresSaver``; ``POST /query`` and SSE ``POST /stream``;
- the same graph served by ``langgraph dev`` (``bench/peers/langgraph_graph.py``, in its own
  ``.venv-langgraph`` made on first use): ``POST /runs/wait`` and ``POST /runs/stream``.

At 1, 8 and 32 concurrent clients it records latency p50/p95/p99, time to first token and
throughput, writes ``bench/results/end_to_end.json`` and plots ``docs/bench-latency.png``.
The figures that matter are the ratios of the mesh to each peer: taken in each round, and
reported as their median over the rounds with the lowest and highest (``ratios``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import httpx
from langchain_text_splitters import RecursiveCharacterTextSplitter
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_retrieval.embeddings import LocalRuntime, local_embedder
from websockets.asyncio.client import connect

from bench import scifact
from bench.langgraph_dev import PEERS, http_process, langgraph_dev
from bench.mesh import ROOT, _free_port, running_mesh
from bench.peers import knowledge_base
from bench.postgres import fresh_database
from bench.stats import machine, percentiles
from bench.user_graph import rotated

LEVELS = (1, 8, 32)
# The retrieval service's default (RETRIEVAL_LOCAL_EMBEDDER): the peers embed chunks and queries with it too.
EMBEDDER: LocalRuntime = "onnx-int8"
RESULTS = Path(__file__).parent / "results" / "end_to_end.json"
PLOT = ROOT / "docs" / "bench-latency.png"
# (question) -> (total ms, time to first token ms or None when the call does not stream)
Call = Callable[[str], Awaitable[tuple[float, float | None]]]


def _chunks(abstracts: list[scifact.Abstract]) -> list[dict[str, str]]:
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=150)
    return [
        {"document_id": a.id, "chunk_id": f"{a.id}:{n}", "text": text}
        for a in abstracts
        for n, text in enumerate(splitter.split_text(a.text))
    ]


async def _level(call: Call, questions: list[str], total: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    first_tokens: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(questions[n % len(questions)])

    async def client_loop() -> None:
        while not queue.empty():
            total_ms, first_ms = await call(queue.get_nowait())
            latencies.append(total_ms)
            if first_ms is not None:
                first_tokens.append(first_ms)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return {"latencies": latencies, "first_tokens": first_tokens, "seconds": time.perf_counter() - started}


def _summary(concurrency: int, batches: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's batches at one concurrency (one per round) as latency percentiles over all of them,
    and the throughput of their sum."""
    latencies = [ms for batch in batches for ms in batch["latencies"]]
    first_tokens = [ms for batch in batches for ms in batch["first_tokens"]]
    figures: dict[str, Any] = {"concurrency": concurrency, "latency_ms": percentiles(latencies)}
    if first_tokens:
        figures["first_token_ms"] = percentiles(first_tokens)
    figures["throughput_qps"] = round(len(latencies) / sum(batch["seconds"] for batch in batches), 2)
    return figures


async def _rounds(calls: dict[str, tuple[Call, Call]], questions: list[str], quick: bool, rounds: int):
    """Every system at every concurrency, request then stream, the systems taking turns in each round.

    Returns the figures per system (all rounds pooled) and per round (for the per-round ratios).
    """
    per_client = 3 if quick else 4
    for request, _ in calls.values():
        for question in questions[:8]:  # warm-up: models, connections, consumers, caches
            await request(question)
    names = tuple(calls)
    batches: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = {
        name: {"request": {c: [] for c in LEVELS}, "stream": {c: [] for c in LEVELS}} for name in names
    }
    per_round = []
    for round_no in range(rounds):
        this_round: dict[str, Any] = {}
        for concurrency in LEVELS:
            total = max(12, per_client * concurrency)
            for name in rotated(names, round_no):
                request, stream = calls[name]
                for mode, call in (("request", request), ("stream", stream)):
                    batch = await _level(call, questions, total, concurrency)
                    batches[name][mode][concurrency].append(batch)
                    this_round.setdefault(name, {"request": [], "stream": []})[mode].append(
                        _summary(concurrency, [batch])
                    )
        per_round.append(this_round)
    systems = {
        name: {mode: [_summary(c, batches[name][mode][c]) for c in LEVELS] for mode in ("request", "stream")}
        for name in names
    }
    return systems, per_round


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    event = "message"
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, line[5:].strip()


# --- the three systems: a request-response call and a streaming call each -----------------------


def _mesh_calls(url: str, client: httpx.AsyncClient) -> tuple[Call, Call]:
    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"

    async def request(question: str) -> tuple[float, float | None]:
        started = time.perf_counter()
        reply = await client.post(f"{url}/api/v1/query", json={"input": question})
        reply.raise_for_status()
        return _ms_since(started), None

    async def stream(question: str) -> tuple[float, float | None]:
        started, first = time.perf_counter(), None
        async with connect(ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "query", "input": question}))
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "error":
                    raise RuntimeError(message["error"])
                if message["type"] != "event":
                    continue
                if message["kind"] == "token" and first is None:
                    first = _ms_since(started)
                if message["kind"] in ("end", "error"):
                    if message["kind"] == "error":
                        raise RuntimeError(message["data"])
                    return _ms_since(started), first

    return request, stream


def _monolith_calls(url: str, client: httpx.AsyncClient) -> tuple[Call, Call]:
    async def request(question: str) -> tuple[float, float | None]:
        started = time.perf_counter()
        reply = await client.post(f"{url}/query", json={"input": question})
        reply.raise_for_status()
        return _ms_since(started), None

    async def stream(question: str) -> tuple[float, float | None]:
        started, first = time.perf_counter(), None
        async with client.stream("POST", f"{url}/stream", json={"input": question}) as reply:
            reply.raise_for_status()
            async for event, _ in _sse_events(reply):
                if event == "token" and first is None:
                    first = _ms_since(started)
        return _ms_since(started), first

    return request, stream


def _langgraph_calls(url: str, client: httpx.AsyncClient) -> tuple[Call, Call]:
    def body(question: str, **extra: Any) -> dict[str, Any]:
        # A thread per question, as the mesh and the monolith have: checkpoints are written the same way.
        return {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": question}]}, **extra}

    async def new_thread() -> str:
        reply = await client.post(f"{url}/threads", json={"thread_id": str(uuid.uuid4())})
        reply.raise_for_status()
        return reply.json()["thread_id"]

    async def request(question: str) -> tuple[float, float | None]:
        started = time.perf_counter()
        thread_id = await new_thread()
        reply = await client.post(f"{url}/threads/{thread_id}/runs/wait", json=body(question))
        reply.raise_for_status()
        if "__error__" in reply.json():
            raise RuntimeError(reply.json()["__error__"])
        return _ms_since(started), None

    async def stream(question: str) -> tuple[float, float | None]:
        started, first = time.perf_counter(), None
        thread_id = await new_thread()
        payload = body(question, stream_mode=["messages-tuple"])
        async with client.stream("POST", f"{url}/threads/{thread_id}/runs/stream", json=payload) as reply:
            reply.raise_for_status()
            async for event, data in _sse_events(reply):
                if event == "error":
                    raise RuntimeError(data)
                if event == "messages" and first is None:
                    chunk = json.loads(data)[0]
                    if chunk.get("type", "").startswith("AIMessage") and chunk.get("content"):
                        first = _ms_since(started)
        return _ms_since(started), first

    return request, stream


async def _run_against(
    urls: dict[str, tuple[Callable[..., tuple[Call, Call]], str]], questions: list[str], quick: bool, rounds: int
):
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        calls = {name: make_calls(url, client) for name, (make_calls, url) in urls.items()}
        return await _rounds(calls, questions, quick, rounds)


async def _ingest(target: str, abstracts: list[scifact.Abstract]) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for i in range(0, len(abstracts), 256):
            batch = [pb.Document(id=a.id, text=a.text) for a in abstracts[i : i + 256]]
            await stub.Ingest(pb.IngestRequest(tenant_id="default", documents=batch), timeout=600)


def spread(values: list[float]) -> dict[str, float]:
    """The median of per-round ratios, with the lowest and highest: how far one round may be from another."""
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "rounds": len(values),
    }


def round_ratios(per_round: list[dict[str, Any]]) -> dict[str, Any]:
    """The mesh's ratios to each peer, taken in each round, as :func:`spread` per concurrency and figure."""
    collected: dict[str, dict[int, dict[str, list[float]]]] = {}
    for systems in per_round:
        for peer, rows in _ratios(systems).items():
            for row in rows:
                figures = collected.setdefault(peer, {}).setdefault(row["concurrency"], {})
                for figure, value in row.items():
                    if figure != "concurrency":
                        figures.setdefault(figure, []).append(value)
    return {
        peer: [
            {"concurrency": c, **{figure: spread(values) for figure, values in figures.items()}}
            for c, figures in levels.items()
        ]
        for peer, levels in collected.items()
    }


def _ratios(systems: dict[str, Any]) -> dict[str, Any]:
    """The mesh's p50 latency and first-token time as a multiple of each peer's, per concurrency."""
    ratios: dict[str, Any] = {}
    for peer in ("monolith", "langgraph_dev"):
        if peer not in systems:
            continue
        rows = []
        for mesh_r, peer_r, mesh_s, peer_s in zip(
            systems["mesh"]["request"],
            systems[peer]["request"],
            systems["mesh"]["stream"],
            systems[peer]["stream"],
            strict=True,
        ):
            row = {
                "concurrency": mesh_r["concurrency"],
                "request_p50": round(mesh_r["latency_ms"]["p50"] / peer_r["latency_ms"]["p50"], 2),
                "throughput": round(mesh_r["throughput_qps"] / peer_r["throughput_qps"], 2),
            }
            if "first_token_ms" in mesh_s and "first_token_ms" in peer_s:
                row["first_token_p50"] = round(mesh_s["first_token_ms"]["p50"] / peer_s["first_token_ms"]["p50"], 2)
            rows.append(row)
        ratios[f"mesh_over_{peer}"] = rows
    return ratios


def _plot(systems: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, figures in systems.items():
        levels = [r["concurrency"] for r in figures["request"]]
        left.plot(levels, [r["latency_ms"]["p50"] for r in figures["request"]], marker="o", label=name)
        right.plot(levels, [r["throughput_qps"] for r in figures["request"]], marker="o", label=name)
    left.set(xlabel="concurrent clients", ylabel="p50 latency (ms)", xscale="log", yscale="log", xticks=list(LEVELS))
    right.set(xlabel="concurrent clients", ylabel="questions per second", xscale="log", xticks=list(LEVELS))
    for axis in (left, right):
        axis.set_xticklabels([str(level) for level in LEVELS])
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle("One question end to end, SciFact 10,959 chunks, offline answerer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def save_knowledge_base(kb_dir: Path, chunks: list[dict[str, str]]) -> None:
    """The peers' knowledge base: ``chunks`` embedded by the model the mesh's retrieval service runs."""
    embedder = local_embedder(EMBEDDER, kb_dir)
    vectors = asyncio.run(embedder.embed([c["text"] for c in chunks]))
    knowledge_base.save(kb_dir, chunks, vectors)


def start_monolith(stack: ExitStack, kb_dir: Path, database: str) -> str:
    """The monolith peer (``bench/peers/monolith.py``) on a free port, stopped with ``stack``; its URL."""
    port = _free_port()
    env = {"BENCH_KB_DIR": str(kb_dir), "BENCH_EMBEDDER": EMBEDDER, "DATABASE_URL": fresh_database(database)}
    args = [sys.executable, "-m", "uvicorn", "bench.peers.monolith:app", "--port", str(port)]
    stack.enter_context(http_process([*args, "--log-level", "warning"], env, f"http://127.0.0.1:{port}/docs"))
    return f"http://127.0.0.1:{port}"


def run(
    quick: bool = False,
    peers: tuple[str, ...] = ("monolith", "langgraph_dev"),
    rounds: int | None = None,
    documents: int | None = None,
) -> dict[str, Any]:
    rounds = rounds or (2 if quick else 5)
    # A smoke (--quick) embeds a small part of the corpus: its figures check the benchmark runs, not the mesh.
    abstracts = scifact.abstracts()[: documents or (300 if quick else None)]
    chunks = _chunks(abstracts)
    questions = list(scifact.test_claims().values())
    with tempfile.TemporaryDirectory(prefix="threadline-e2e-") as scratch, ExitStack() as stack:
        kb_dir = Path(scratch) / "kb"
        save_knowledge_base(kb_dir, chunks)

        # Dense search, as the peers do: the same retrieval work in all three (hybrid is the mesh's default).
        env = {
            "DATABASE_URL": fresh_database("threadline_bench_mesh"),
            "SEARCH_DEFAULT_MODE": "dense",
            "THREADLINE_SAMPLE_DIR": "",  # the abstracts only, as the peers have (not docs/)
        }
        mesh = stack.enter_context(running_mesh(extra_env=env))
        asyncio.run(_ingest(mesh.retrieval_target, abstracts))
        urls: dict[str, tuple[Callable[..., tuple[Call, Call]], str]] = {"mesh": (_mesh_calls, mesh.url)}
        if "monolith" in peers:
            urls["monolith"] = (_monolith_calls, start_monolith(stack, kb_dir, "threadline_bench_mono"))
        if "langgraph_dev" in peers:
            # allow_blocking: the peer reads the knowledge base from disk on first use, as the monolith does at start.
            env = {"BENCH_KB_DIR": str(kb_dir), "BENCH_EMBEDDER": EMBEDDER, "PYTHONPATH": str(ROOT)}
            url = stack.enter_context(langgraph_dev(PEERS / "langgraph.json", max(LEVELS), env, allow_blocking=True))
            urls["langgraph_dev"] = (_langgraph_calls, url)
        systems, per_round = asyncio.run(_run_against(urls, questions, quick, rounds))

    result = {
        "benchmark": "end_to_end",
        "knowledge_base": {"dataset": "BEIR SciFact corpus", "documents": len(abstracts), "chunks": len(chunks)},
        "answerer": "offline extractive answerer",
        "embedder": f"MiniLM-L6-v2 on ONNX Runtime ({EMBEDDER}), in every system",
        "rounds": rounds,
        "order": "systems take turns at each concurrency in each round, the first rotating: "
        + ", ".join(" > ".join(rotated(tuple(urls), n)) for n in range(min(rounds, len(urls)))),
        "machine": machine(),
        "systems": systems,
        # The median over rounds of the ratio taken within each round, with its lowest and highest.
        "ratios": round_ratios(per_round),
        # The same ratios from the figures pooled over every round.
        "pooled_ratios": _ratios(systems),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    _plot(systems, PLOT)
    return result
