"""Checkpoint put and get-latest through the memory service, next to the same saver in process.

``python -m bench memory_latency`` starts ``python -m threadline_memory`` on PostgreSQL (a
fresh database), once with its Redis cache and once without, and times, one call at a time,
what a LangGraph run does on every step: ``aput`` of a checkpoint and ``aget_tuple`` of a
thread's latest one, through the remote saver (gRPC). In the same run it times
``AsyncPostgresSaver`` in this process on another fresh database of the same server: the
figures that matter are the ratios.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver

from bench.end_to_end import _fresh_database
from bench.mesh import _free_port, grpc_service
from bench.stats import machine, percentiles

RESULTS = Path(__file__).parent / "results" / "memory_latency.json"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
THREADS = 20


def _checkpoint(turn: int) -> dict[str, Any]:
    """A checkpoint as a chat thread has after ``turn`` exchanges."""
    checkpoint = empty_checkpoint()
    messages: list[Any] = []
    for n in range(turn):
        messages += [HumanMessage(f"Question {n} about durability?"), AIMessage(f"Answer {n} with a citation [1].")]
    checkpoint["channel_values"] = {"messages": messages}
    checkpoint["channel_versions"] = {"messages": str(turn)}
    return checkpoint


async def _time(calls: list[Callable[[], Awaitable[Any]]]) -> dict[str, float]:
    samples = []
    for call in calls:
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


async def _measure(saver: BaseCheckpointSaver, rounds: int) -> dict[str, Any]:
    threads = [
        {"configurable": {"thread_id": f"bench-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}} for _ in range(THREADS)
    ]
    for thread in threads:  # warm-up: connections, schema, cache
        await saver.aput(thread, _checkpoint(1), {"source": "input", "step": -1}, {"messages": "1"})
        await saver.aget_tuple(thread)
    puts, gets = [], []
    for n in range(rounds):
        thread = threads[n % THREADS]
        checkpoint = _checkpoint(2 + n // THREADS)
        # A run's steps: the service registers the thread once per run (its "input" checkpoint), not here.
        step = {"source": "loop", "step": n}
        puts.append(lambda t=thread, c=checkpoint, m=step: saver.aput(t, c, m, c["channel_versions"]))
        gets.append(lambda t=thread: saver.aget_tuple(t))
    put = await _time(puts)
    # Read after the writes, the way a run reads a thread it did not just write.
    get = await _time(gets)
    return {"put_ms": put, "get_latest_ms": get}


async def _in_process(database_url: str, rounds: int) -> dict[str, Any]:
    async with AsyncPostgresSaver.from_conn_string(database_url) as saver:
        await saver.setup()
        return await _measure(saver, rounds)


async def _through_grpc(target: str, rounds: int) -> dict[str, Any]:
    saver = RemoteCheckpointSaver(target=target, tenant_id="bench")
    try:
        return await _measure(saver, rounds)
    finally:
        await saver.close()


def _served(rounds: int, redis_url: str | None) -> dict[str, Any]:
    """The figures through a memory service of its own (a fresh database; Redis cache or none)."""
    port = _free_port()
    env = {
        "MEMORY_PORT": str(port),
        "DATABASE_URL": _fresh_database("threadline_bench_memory"),
        "NATS_NAMESPACE": "bench" + uuid.uuid4().hex[:6],
        # Unset, the service would take a REDIS_URL from this environment: "" means no cache.
        "REDIS_URL": redis_url or "",
    }
    with grpc_service("threadline_memory", port, env, timeout_s=60) as target:
        return asyncio.run(_through_grpc(target, rounds))


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 100 if quick else 400
    cached = _served(rounds, REDIS_URL)
    uncached = _served(rounds, None)
    local = asyncio.run(_in_process(_fresh_database("threadline_bench_memory_local"), rounds))
    result = {
        "benchmark": "memory_latency",
        "machine": machine(),
        "rounds": rounds,
        "through_grpc_with_redis_cache": cached,
        "through_grpc_without_cache": uncached,
        "in_process": local,
        "ratio_p50_grpc_cached_over_in_process": {
            op: round(cached[op]["p50"] / local[op]["p50"], 2) for op in ("put_ms", "get_latest_ms")
        },
        "ratio_p50_grpc_uncached_over_in_process": {
            op: round(uncached[op]["p50"] / local[op]["p50"], 2) for op in ("put_ms", "get_latest_ms")
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result
