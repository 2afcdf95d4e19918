"""Submitting runs to the agents over JetStream and following their events back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from threadline.events import RunEvent, RunRequested, Topology
from threadline.nats import ensure_streams
from threadline.telemetry import inject_headers

tracer = trace.get_tracer("threadline.gateway")


class RunBus:
    """The gateway's connection to NATS: publishes run requests, relays run events."""

    def __init__(self, nc: NatsClient, js: JetStreamContext, topology: Topology) -> None:
        self.nc, self.js, self.topology = nc, js, topology

    @classmethod
    async def connect(cls, url: str, topology: Topology) -> RunBus:
        nc = await nats.connect(url, name="threadline-gateway", max_reconnect_attempts=-1, connect_timeout=5)
        js = nc.jetstream()
        await ensure_streams(js, topology)
        return cls(nc, js, topology)

    async def close(self) -> None:
        await self.nc.drain()

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def submit(self, request: RunRequested) -> None:
        """Store the run durably; once this returns, the run will be executed even if no worker is up yet."""
        with tracer.start_as_current_span("publish runs.requested", kind=trace.SpanKind.PRODUCER) as span:
            span.set_attribute("threadline.run_id", request.run_id)
            span.set_attribute("messaging.destination.name", self.topology.runs_requested)
            # The run id as message id makes a retried publish a no-op instead of a second run.
            headers = inject_headers({"Nats-Msg-Id": request.run_id})
            await self.js.publish(self.topology.runs_requested, request.to_bytes(), headers=headers)

    @asynccontextmanager
    async def follow(self, run_id: str, after_seq: int = -1) -> AsyncIterator[RunEventStream]:
        """Subscribe to a run's events; entered before :meth:`submit` so the first event is not waited for twice.

        Reads the RUN_EVENTS stream, so events published before the subscription are replayed, not missed.
        """
        stream = RunEventStream(after_seq)
        sub = await self.js.subscribe(
            self.topology.run_events(run_id),
            cb=stream.on_message,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        try:
            yield stream
        finally:
            await sub.unsubscribe()

    async def workers(self) -> tuple[int, int]:
        """(pull requests agent workers have outstanding, runs taken and not yet acked)."""
        info = await self.js.consumer_info(self.topology.runs_stream, self.topology.runs_consumer)
        return info.num_waiting or 0, info.num_ack_pending or 0


class RunEventStream:
    """A run's events in order, without duplicates (a redelivered run may publish a seq twice)."""

    def __init__(self, after_seq: int) -> None:
        self._queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._last_seq = after_seq
        self._done = False

    async def on_message(self, msg) -> None:
        self._queue.put_nowait(RunEvent.model_validate_json(msg.data))

    def __aiter__(self) -> RunEventStream:
        return self

    async def __anext__(self) -> RunEvent:
        while not self._done:
            event = await self._queue.get()
            if event.seq <= self._last_seq:
                continue
            self._last_seq = event.seq
            self._done = event.is_final
            return event
        raise StopAsyncIteration

    async def final(self) -> RunEvent:
        """Skip to the run's end or error event."""
        async for event in self:
            if event.is_final:
                return event
        raise RuntimeError("the run's event stream ended without a final event")
