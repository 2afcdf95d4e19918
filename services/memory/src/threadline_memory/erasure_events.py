"""Erasure events: what the memory service tells the rest of the mesh after it erased data.

They go to JetStream (stream ``<NAMESPACE>_ERASURE``), acknowledged before Erase answers,
so a service that is down when a user is erased still learns of it when it returns.
"""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from threadline.events import DataErased, Topology
from threadline.nats import ensure_streams, erasure_stream_config

_PUBLISH_TIMEOUT_S = 5.0


class EventsUnavailable(Exception):
    """NATS did not take the event; the caller may retry (erasing again is harmless)."""


class ErasureEvents:
    """Connects on first use, so the service starts (and serves) while NATS is down."""

    def __init__(self, url: str, topology: Topology) -> None:
        self._url, self._topology = url, topology
        self._nc: Client | None = None
        self._lock = asyncio.Lock()

    async def publish(self, event: DataErased) -> None:
        try:
            # One limit for connecting and publishing: a first connect to a NATS that is down retries.
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                nc = await self._connected()
                await nc.jetstream().publish(self._topology.erasure, event.to_bytes())
        except (NatsError, OSError, TimeoutError) as exc:
            raise EventsUnavailable(f"NATS did not take the erasure event: {exc!r}") from exc

    async def _connected(self) -> Client:
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                nc = await nats.connect(
                    self._url, name="threadline-memory", connect_timeout=2, max_reconnect_attempts=-1
                )
                try:
                    await ensure_streams(nc.jetstream(), self._topology, [erasure_stream_config(self._topology)])
                except BaseException:
                    await nc.close()
                    raise
                self._nc = nc
            return self._nc

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None
