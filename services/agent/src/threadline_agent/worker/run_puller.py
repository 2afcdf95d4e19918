"""Our own pull loop on one graph's durable consumer: a run is asked for the moment a slot is free.

Why not faststream's ``PullSub(batch_size=N)`` over nats-py's ``fetch(batch=N)``: an idle fetch
ends on the client at its timeout while the server expires the pull request 0.1 ms earlier, so the
server's 408 for it lands in the shared inbox after the client gave up. The next fetch reads that
stale 408 as the answer to its own no-wait probe and opens a second, lingering pull request for N
messages that outlives it. The next run is delivered on that orphan request, and the fetch that gets
it waits for the N-1 others until the orphan expires: up to the fetch timeout (5 s) after an idle
pause. A batch also ran to its end before the next fetch, so its slowest run held the others' slots.

Here exactly one pull request for one message is open at a time, and it is waited for until the
server answers it (the message, or its 408), so no answer is ever taken for another request's; it is
made only while a slot is free, so a delivered run is worked (and kept alive) at once, never parked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import DEFAULT_PREFIX, ConsumerConfig
from nats.js.errors import NotFoundError

ANSWER_GRACE_S = 1.0  # past a request's expiry, how long its 408 may take before the request is taken as lost
RETRY_AFTER_S = 1.0  # after a refused request or a connection error, before asking again
REQUEST_EXPIRED = "408"
HEARTBEAT = "100"

log = structlog.get_logger("threadline.agent")

Handler = Callable[[Msg], Awaitable[None]]


class RunPuller:
    """Works up to ``slots`` messages of one durable pull consumer at once, pulling one per free slot."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        config: ConsumerConfig,
        handle: Handler,
        *,
        slots: int,
        expires_s: float,
    ) -> None:
        assert config.durable_name is not None
        self._nc = nc
        self._stream = stream
        self._config = config
        self._handle = handle
        self._slots = asyncio.Semaphore(slots)
        self._expires_s = expires_s
        self._next_subject = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{config.durable_name}"
        self._inbox = nc.new_inbox()
        self._answers: asyncio.Queue[Msg] = asyncio.Queue()
        self._sub: Subscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._working: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind to the durable consumer (made on first use, left as it is if it exists) and start pulling."""
        js = self._nc.jetstream()
        try:
            await js.consumer_info(self._stream, self._config.durable_name)  # type: ignore[arg-type]
        except NotFoundError:
            await js.add_consumer(self._stream, self._config)
        self._sub = await self._nc.subscribe(self._inbox, cb=self._answers.put)
        self._loop = asyncio.create_task(self._pull_loop(), name=f"pull {self._config.durable_name}")

    async def stop(self, grace_s: float) -> None:
        """Pull no more, give runs in flight ``grace_s`` to finish, then cancel the rest (they hand their run back)."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        while not self._answers.empty():  # delivered as the loop stopped: back to the queue now, not after ack_wait
            msg = self._answers.get_nowait()
            if _status(msg) is None:
                await msg.nak()
        if self._working:
            _, late = await asyncio.wait(self._working, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _pull_loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                msg = await self._pull()
            except NatsError as exc:  # reconnecting or closing: ask again once it may get through
                log.warning("pull request failed", consumer=self._config.durable_name, error=str(exc))
                msg = None
                await asyncio.sleep(RETRY_AFTER_S)
            except BaseException:
                self._slots.release()
                raise
            if msg is None:
                self._slots.release()
                continue
            task = asyncio.create_task(self._work(msg))
            self._working.add(task)
            task.add_done_callback(self._working.discard)

    async def _pull(self) -> Msg | None:
        """Ask for one message and wait for the server's answer: the message, or None once the request expired."""
        request = {"batch": 1, "expires": int(self._expires_s * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
        try:
            async with asyncio.timeout(self._expires_s + ANSWER_GRACE_S):
                while True:
                    msg = await self._answers.get()
                    status = _status(msg)
                    if status is None:
                        return msg
                    if status == HEARTBEAT:
                        continue
                    if status != REQUEST_EXPIRED:  # e.g. 409: consumer deleted, too many waiting requests
                        description = msg.headers.get("Description") if msg.headers else None
                        log.warning("pull request refused", status=status, description=description)
                        await asyncio.sleep(RETRY_AFTER_S)
                    return None
        except TimeoutError:  # the answer was lost (a reconnect): the request is gone with it
            return None

    async def _work(self, msg: Msg) -> None:
        try:
            await self._handle(msg)
        except Exception:
            # The handler answers every run itself; this is a bug in it, and the run is redelivered after ack_wait.
            log.exception("run handler failed", consumer=self._config.durable_name)
        finally:
            self._slots.release()


def _status(msg: Msg) -> str | None:
    """The status of a message JetStream sent about a pull request (None for a real message)."""
    if msg.data or not msg.headers:
        return None
    return msg.headers.get("Status")
