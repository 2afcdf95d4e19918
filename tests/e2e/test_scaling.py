"""Scaling out: two agent workers and two gateways on one NATS share the work."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from tests.cluster import Cluster

QUESTIONS = 24


def _successes(metrics: str) -> float:
    found = re.search(r'threadline_agent_runs_total\{assistant="agent",outcome="success"\} ([0-9.]+)', metrics)
    return float(found.group(1)) if found else 0.0


async def test_runs_spread_over_every_worker_whichever_gateway_took_them(database: str, tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, database, agents=2, gateways=2)
    await asyncio.to_thread(cluster.start)
    try:
        await cluster.load_docs()
        async with httpx.AsyncClient(timeout=120) as client:
            replies = await asyncio.gather(
                *(
                    client.post(f"{cluster.urls[n % 2]}/api/v1/query", json={"input": "How are runs kept durable?"})
                    for n in range(QUESTIONS)
                )
            )
            done = {name: _successes((await client.get(url)).text) for name, url in cluster.metrics_urls.items()}
    finally:
        await asyncio.to_thread(cluster.stop)
    assert [r.status_code for r in replies] == [200] * QUESTIONS
    assert all(r.json()["citations"] for r in replies)
    assert len({r.json()["run_id"] for r in replies}) == QUESTIONS
    # Each run was worked exactly once, and by both workers between them.
    assert sum(done.values()) == QUESTIONS
    assert all(count > 0 for count in done.values()), done
