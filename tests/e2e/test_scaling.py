"""Scaling out: two agent workers and two gateways on one NATS share the work and each other's streams."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster import Cluster
from tests.e2e.run_events import check_run_order, read_frames

QUESTION = "How are runs kept durable?"
QUESTIONS = 24


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, session_database: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("scaling"), session_database, agents=2, gateways=2)
    cluster.start()
    try:
        asyncio.run(cluster.load_docs())
        yield cluster
    finally:
        cluster.stop()


def _successes(metrics: str) -> float:
    found = re.search(r'threadline_agent_runs_total\{assistant="agent",outcome="success"\} ([0-9.]+)', metrics)
    return float(found.group(1)) if found else 0.0


async def test_runs_spread_over_every_worker_whichever_gateway_took_them(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=120) as client:
        before = {name: _successes((await client.get(url)).text) for name, url in cluster.metrics_urls.items()}
        replies = await asyncio.gather(
            *(client.post(f"{cluster.urls[n % 2]}/api/v1/query", json={"input": QUESTION}) for n in range(QUESTIONS))
        )
        after = {name: _successes((await client.get(url)).text) for name, url in cluster.metrics_urls.items()}
    assert [r.status_code for r in replies] == [200] * QUESTIONS
    assert all(r.json()["citations"] for r in replies)
    assert len({r.json()["run_id"] for r in replies}) == QUESTIONS
    done = {name: after[name] - before[name] for name in after}
    # Each run was worked exactly once, and by both workers between them.
    assert sum(done.values()) == QUESTIONS
    assert all(count > 0 for count in done.values()), done


def test_a_stream_started_on_one_gateway_resumes_on_the_other(cluster: Cluster) -> None:
    first, second = cluster.urls
    with httpx.Client(timeout=120) as client:
        with client.stream("POST", f"{first}/api/v1/runs/stream", json={"input": QUESTION}) as reply:
            run_path = reply.headers["content-location"]
            before = read_frames(reply, limit=2)  # then this gateway's connection drops
        with client.stream("GET", f"{second}{run_path}/stream", headers={"Last-Event-ID": before[-1].id}) as reply:
            assert reply.status_code == 200
            after = read_frames(reply)
    check_run_order([(int(f.id), f.event) for f in before + after])
    assert after[-1].data["citations"]
