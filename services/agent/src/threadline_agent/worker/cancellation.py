"""Cancelling a run: before a worker takes it (the cancelled-runs bucket) or while one works it (a message)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from threadline.events import Topology
from threadline.run_events import RunResult

from threadline_agent.worker.failures import RunFailed

if TYPE_CHECKING:  # the pipeline imports this step; its types are only annotations here
    from threadline_agent.worker.pipeline import Next, RunContext

log = structlog.get_logger("threadline.agent")


class UnlessCancelled:
    """Works the rest of the pipeline unless the run is cancelled; then it ends ``cancelled``.

    The gateway marks a cancelled run in a bucket (for one no worker has taken yet) and
    publishes on the run's cancel subject (for one being worked).
    """

    def __init__(self, nc: NatsClient, topology: Topology, cancelled: KeyValue) -> None:
        self._nc, self._topology, self._cancelled = nc, topology, cancelled

    async def __call__(self, run: RunContext, next: Next) -> RunResult:
        task = asyncio.ensure_future(next())
        cancelled = asyncio.Event()

        async def on_cancel(_: Any) -> None:
            cancelled.set()
            task.cancel()

        # Subscribed before the bucket is read: a cancel sent in between is still heard.
        subscription = await self._nc.subscribe(self._topology.run_cancel(run.request.run_id), cb=on_cancel)
        try:
            try:
                await self._cancelled.get(run.request.run_id)
                await on_cancel(None)
            except KeyNotFoundError:
                pass
            return await task
        except asyncio.CancelledError:
            if not cancelled.is_set():
                raise  # the worker itself is stopping: the run goes back to the queue
            log.info("run cancelled")
            raise RunFailed("cancelled", "The run was cancelled.") from None
        finally:
            await subscription.unsubscribe()
