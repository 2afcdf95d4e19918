"""A client that leaves a stream mid-run: its subscription is released and the run counts as disconnected.

Served by a real uvicorn, because only a real server tells the app that the client has gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import nats
import pytest
from threadline.events import Topology
from threadline_gateway.settings import GatewaySettings

from tests.conftest import NATS_URL
from tests.gateway.conftest import served_gateway


@pytest.fixture
def served(nats_namespace: str) -> Iterator[str]:
    settings = GatewaySettings(NATS_URL=NATS_URL, NATS_NAMESPACE=nats_namespace, GATEWAY_SSE_PING_S=0.2)
    with served_gateway(settings) as url:
        yield url


def _listening(namespace: str) -> int:
    """Consumers of the run events that someone is subscribed to (an ephemeral one outlives its last reader)."""

    async def count() -> int:
        nc = await nats.connect(NATS_URL)
        try:
            consumers = await nc.jetstream().consumers_info(Topology(namespace).run_events_stream)
            return sum(1 for c in consumers if c.push_bound)
        finally:
            await nc.close()

    return asyncio.run(count())


def test_leaving_a_stream_releases_its_subscription(served: str, nats_namespace: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        # No agent works here, so the run never ends: only the client's leaving can end this stream.
        with client.stream("POST", "/api/v1/runs/stream", json={"input": "never answered"}) as reply:
            assert reply.status_code == 200
            lines = reply.iter_lines()
            assert next(lines) == ": ping"
            assert _listening(nats_namespace) == 1
        deadline = time.monotonic() + 5
        while _listening(nats_namespace) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listening(nats_namespace) == 0
        metrics = client.get("/metrics").text
    assert 'threadline_gateway_runs_total{outcome="disconnected"} 1.0' in metrics
