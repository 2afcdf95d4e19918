"""Steady load while processes die and come back: count what was accepted, finished, failed, lost, doubled.

Faults, one at a time: SIGKILL one of two agent workers, SIGKILL and restart retrieval, restart
memory, restart NATS (JetStream on file storage), SIGKILL Redis and bring it back.

``./task test:reliability`` (not in the default run: it takes minutes). The counts are
written to bench/results/reliability.json; docs/benchmarks.md reports a real run.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest
from nats.errors import Error as NatsError
from threadline.events import RunRequested, Topology
from threadline.run_events import RunEvent

from bench.stats import machine
from tests.cluster import ROOT, Cluster

DURATION_S = float(os.environ.get("RELIABILITY_DURATION_S", "60"))
CLIENTS = int(os.environ.get("RELIABILITY_CLIENTS", "20"))
RESULTS = ROOT / "bench" / "results" / "reliability.json"
QUESTIONS = ["How are runs kept durable?", "What does the memory service store?", "Which port does the gateway use?"]

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]


@dataclass
class Audit:
    """Every run the gateway accepted (seen on the RUNS subject) and every final event, from NATS itself."""

    accepted: set[str] = field(default_factory=set)
    finals: Counter = field(default_factory=Counter)

    async def watch(self, url: str, topology: Topology) -> nats.NATS:
        nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)

        async def on_request(msg) -> None:
            self.accepted.add(RunRequested.model_validate_json(msg.data).run_id)

        async def on_event(msg) -> None:
            event = RunEvent.model_validate_json(msg.data)
            if event.is_final:
                self.finals[event.run_id] += 1

        await nc.subscribe(topology.runs_requested_wildcard, cb=on_request)
        await nc.subscribe(topology.run_events("*"), cb=on_event)
        return nc

    async def settle(self, nc: nats.NATS, topology: Topology, timeout: float) -> set[str]:
        """Runs accepted but without a final event; asks the stream for those the subscription missed."""
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            missing = {run for run in self.accepted if not self.finals[run]}
            for run in missing:
                try:
                    last = await js.get_last_msg(topology.run_events_stream, topology.run_events(run))
                except NatsError:
                    continue
                if RunEvent.model_validate_json(last.data).is_final:
                    self.finals[run] = max(self.finals[run], 1)
            missing = {run for run in self.accepted if not self.finals[run]}
            if not missing or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(2)


@dataclass
class Outcomes:
    started: float = field(default_factory=time.monotonic)
    completed: int = 0
    errors: list[tuple[float, int, str]] = field(default_factory=list)
    unclear: list[tuple[float, str]] = field(default_factory=list)


async def _client(url: str, stop_at: float, outcomes: Outcomes, n: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=150) as client:
        while time.monotonic() < stop_at:
            question = QUESTIONS[n % len(QUESTIONS)]
            n += 1
            at = time.monotonic() - outcomes.started
            try:
                reply = await client.post("/api/v1/query", json={"input": question})
            except httpx.HTTPError as exc:
                outcomes.unclear.append((at, type(exc).__name__))
                await asyncio.sleep(0.5)
                continue
            if reply.status_code == 200 and reply.json()["answer"]:
                outcomes.completed += 1
            else:
                outcomes.errors.append((at, reply.status_code, reply.json()["error"]["code"]))
                await asyncio.sleep(0.5)


async def _faults(cluster: Cluster, outcomes: Outcomes, windows: list[dict]) -> None:
    """Kill or restart one part at a time, recording when each outage starts and when the mesh is ready again."""

    async def at(offset: float) -> None:
        await asyncio.sleep(max(0.0, outcomes.started + offset - time.monotonic()))

    async def outage(name: str, action) -> None:
        began = time.monotonic() - outcomes.started
        await asyncio.to_thread(action)
        await asyncio.to_thread(cluster.wait_ready)
        windows.append(
            {"fault": name, "from_s": round(began, 1), "to_s": round(time.monotonic() - outcomes.started, 1)}
        )

    def restart(name: str, kill: bool, down_s: float = 0.0) -> None:
        (cluster[name].kill if kill else cluster[name].stop)()
        time.sleep(down_s)
        cluster[name].start()

    span = DURATION_S
    await at(span * 0.12)
    await outage("SIGKILL agent worker 1 of 2", cluster["agent-1"].kill)
    await at(span * 0.27)
    await outage("SIGKILL retrieval, restart", lambda: restart("retrieval", kill=True))
    await at(span * 0.42)
    await outage("restart memory", lambda: restart("memory", kill=False))
    await at(span * 0.55)
    cluster["agent-1"].start()
    await at(span * 0.62)
    await outage("restart NATS (JetStream on file)", lambda: restart("nats", kill=False))
    await at(span * 0.8)
    await outage("SIGKILL Redis, 5 s down, restart", lambda: restart("redis", kill=True, down_s=5))


async def test_no_run_is_lost_or_answered_twice_while_parts_fail(database: str, tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, database)
    cluster["gateway-1"].env["GATEWAY_RUN_TIMEOUT_S"] = "90"
    # A limit no client reaches, so every request goes through the Redis rate limiter while Redis dies.
    cluster["gateway-1"].env["GATEWAY_RATE_LIMIT_TENANT"] = "1000000"
    await asyncio.to_thread(cluster.start)
    topology = Topology(cluster.namespace)
    audit, outcomes, windows = Audit(), Outcomes(), []
    try:
        await cluster.load_docs()
        nc = await audit.watch(cluster.nats_url, topology)
        outcomes.started = time.monotonic()
        stop_at = outcomes.started + DURATION_S
        await asyncio.gather(
            _faults(cluster, outcomes, windows), *(_client(cluster.url, stop_at, outcomes, n) for n in range(CLIENTS))
        )
        lost = await audit.settle(nc, topology, timeout=120)
        await nc.drain()
    finally:
        await asyncio.to_thread(cluster.stop)

    doubled = sorted(run for run, count in audit.finals.items() if count > 1)
    report = {
        "benchmark": "reliability",
        "machine": machine(),
        "duration_s": DURATION_S,
        "clients": CLIENTS,
        "faults": windows,
        "accepted": len(audit.accepted),
        "completed": outcomes.completed,
        "clear_errors": len(outcomes.errors),
        "error_codes": dict(Counter(f"{status} {code}" for _, status, code in outcomes.errors)),
        "error_times_s": sorted({round(t) for t, _, _ in outcomes.errors}),
        "transport_errors": len(outcomes.unclear),
        "lost": len(lost),
        "answered_twice": len(doubled),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    assert outcomes.completed > 0
    assert not lost, f"accepted runs never finished: {sorted(lost)[:5]}"
    assert not doubled, f"runs answered twice: {doubled[:5]}"
    assert not outcomes.unclear, f"requests without an HTTP answer: {outcomes.unclear[:5]}"
