"""One gRPC service's stubs, opened lazily, for a client that serves both async and blocking callers.

Each channel is opened on first use: the aio one inside the event loop it will belong to (so the
client can be built before any loop runs), the blocking one once, under a lock, for sync callers.
Both are traced. A channel the caller handed in is used as is, and left for the caller to close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import grpc
from opentelemetry.instrumentation.grpc import client_interceptor
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
from threadline.grpc import traced_channel

S = TypeVar("S")


class LazyStubs(Generic[S]):
    """``aio()`` and ``blocking()`` stubs of one service, each channel opened on first use."""

    def __init__(self, make_stub: Callable[[Any], S], target: str | None, channel: grpc.aio.Channel | None) -> None:
        if (target is None) == (channel is None):
            raise ValueError("give exactly one of target or channel")
        self.target = target
        self._make_stub = make_stub
        self._channel = channel
        self._stub = make_stub(channel) if channel is not None else None
        self._sync_channel: grpc.Channel | None = None
        self._sync_stub: S | None = None
        self._sync_lock = threading.Lock()

    def aio(self) -> S:
        if self._stub is None:
            self._channel = traced_channel(self.target)  # type: ignore[arg-type]
            self._stub = self._make_stub(self._channel)
        return self._stub

    def blocking(self) -> S:
        if self.target is None:
            raise NotImplementedError("the sync methods need a target; this client was given only a grpc.aio channel")
        with self._sync_lock:
            if self._sync_stub is None:
                self._sync_channel = intercept_channel(grpc.insecure_channel(self.target), client_interceptor())
                self._sync_stub = self._make_stub(self._sync_channel)
            return self._sync_stub

    async def close(self) -> None:
        """Close the channels opened here (not one that was handed in)."""
        if self._channel is not None and self.target is not None:
            await self._channel.close()
            self._channel = self._stub = None
        with self._sync_lock:
            if self._sync_channel is not None:
                self._sync_channel.close()
                self._sync_channel = self._sync_stub = None
