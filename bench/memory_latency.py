"""Checkpoint put and get-latest through the memory service, next to the same saver in process.

``python -m bench memory_latency`` starts ``python -m threadline_memory`` on PostgreSQL (a
fresh database), once with its Redis cache and once without, and times, one call at a time,
what a LangGraph run does on every step: ``aput`` of a checkpoint and ``aget_tuple`` of a
thread's latest one, through the remote saver (gRPC). In the same run it times
``AsyncPostgresSaver`` in this process on another fresh database of the same server: the
figures that matter are the ratios.

Then a run's checkpoints as a whole: the trivial user graph (``bench/peers/user_graph``) invoked
on a new thread per run in this process, with ``InMemorySaver``, ``AsyncPostgresSaver`` and the
remote saver sending a call per write (as before ``PutBatch``), batching the writes that meet on
the wire, and pipelined as the agent's worker runs it (puts behind the run, flushed at its end;
``write_behind``), all with LangGraph's default ``durability="async"``, and for reference with
``"exit"`` (one write at the end: what a crash guarantee costs), the ways taking turns in rounds;
with the round trips each run makes to the memory service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Durability
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver, write_behind

from bench.mesh import _free_port, grpc_service
from bench.peers.user_graph.graph import builder as user_graph
from bench.postgres import fresh_database
from bench.stats import machine, percentiles

T = Any

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


class _CountingSaver(RemoteCheckpointSaver):
    """The remote saver, counting its calls to the memory service (every one but a listing goes through _call)."""

    calls = 0

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        self.calls += 1
        return await super()._call(call)


async def _runs(target: str, database_url: str, rounds: int, per_round: int) -> dict[str, Any]:
    """The user graph's runs, each way in turn per round (the order rotating), on a new thread per run."""
    per_write = _CountingSaver(target=target, tenant_id="bench", batch_writes=False)
    batched = _CountingSaver(target=target, tenant_id="bench")
    async with AsyncPostgresSaver.from_conn_string(database_url) as postgres:
        await postgres.setup()
        # name: (saver, durability, whether its puts go on behind the run, flushed at its end, as the worker does)
        ways: dict[str, tuple[BaseCheckpointSaver, Durability, bool]] = {
            "in_process_inmemory": (InMemorySaver(), "async", False),
            "in_process_postgres": (postgres, "async", False),
            "remote_call_per_write": (per_write, "async", False),
            "remote_batched": (batched, "async", False),
            "remote_pipelined": (batched, "async", True),
            "remote_exit_only": (batched, "exit", False),
        }
        graphs = {name: user_graph.compile(checkpointer=saver) for name, (saver, _, _) in ways.items()}
        samples: dict[str, list[float]] = {name: [] for name in ways}
        calls: dict[str, int] = dict.fromkeys(ways, 0)

        async def batch(name: str, n: int, timed: bool) -> None:
            saver, durability, behind = ways[name]
            for _ in range(n):
                config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
                before = saver.calls if isinstance(saver, _CountingSaver) else 0
                started = time.perf_counter()
                with write_behind(saver) if behind else contextlib.nullcontext():
                    out = await graphs[name].ainvoke({"text": "a run's words"}, config, durability=durability)
                if behind:
                    await batched.aflush(config)
                if timed:
                    samples[name].append((time.perf_counter() - started) * 1000)
                    calls[name] += (saver.calls if isinstance(saver, _CountingSaver) else 0) - before
                assert out["report"] == "3 words"

        names = list(ways)
        for name in names:  # warm-up
            await batch(name, 10, timed=False)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                await batch(name, per_round, timed=True)
    await batched.close()
    await per_write.close()
    floor = percentiles(samples["in_process_postgres"])["p50"]
    return {
        name: {
            "run_ms": percentiles(samples[name]),
            "memory_calls_per_run": round(calls[name] / len(samples[name]), 2),
            "minus_in_process_postgres_p50_ms": round(percentiles(samples[name])["p50"] - floor, 2),
        }
        for name in ways
    }


def _served(rounds: int, redis_url: str | None, runs: bool = False) -> dict[str, Any]:
    """The figures through a memory service of its own (a fresh database; Redis cache or none)."""
    port = _free_port()
    env = {
        "MEMORY_PORT": str(port),
        "DATABASE_URL": fresh_database("threadline_bench_memory"),
        "NATS_NAMESPACE": "bench" + uuid.uuid4().hex[:6],
        # Unset, the service would take a REDIS_URL from this environment: "" means no cache.
        "REDIS_URL": redis_url or "",
    }
    with grpc_service("threadline_memory", port, env, timeout_s=60) as target:
        if runs:
            # rounds < 400: a quick smoke run
            per_round = 20 if rounds >= 400 else 5
            local_db = fresh_database("threadline_bench_memory_runs")
            return asyncio.run(_runs(target, local_db, 10 if rounds >= 400 else 3, per_round))
        return asyncio.run(_through_grpc(target, rounds))


def run(quick: bool = False, only_runs: bool = False) -> dict[str, Any]:
    rounds = 100 if quick else 400
    graph_runs = _served(rounds, REDIS_URL, runs=True)
    if only_runs:
        return {"benchmark": "memory_latency", "machine": machine(), "user_graph_runs": graph_runs}
    cached = _served(rounds, REDIS_URL)
    uncached = _served(rounds, None)
    local = asyncio.run(_in_process(fresh_database("threadline_bench_memory_local"), rounds))
    result = {
        "benchmark": "memory_latency",
        "machine": machine(),
        "rounds": rounds,
        "through_grpc_with_redis_cache": cached,
        "through_grpc_without_cache": uncached,
        "in_process": local,
        "user_graph_runs": graph_runs,
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
