"""Erasure as JetStream events: a DataErased on the ERASURE stream deletes what retrieval holds of it.

A whole tenant's erasure deletes every collection of the tenant (chunks, vectors, index files);
one user's deletes the documents whose metadata has that ``user_id``. Every replica binds to one
durable consumer of the retrieval service's own, so an erasure published while every replica was
down is still acted on, by one of them. The message is acked only once the deletion is on disk;
acting on a redelivered one again is harmless, since deleting what is gone deletes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError
from threadline.events import DataErased
from threadline.nats import ensure_streams, erasure_stream_config

from threadline_retrieval.settings import RetrievalSettings

CONSUMER = "retrieval-erasure"
RETRY_DELAY_S = 5.0
# Deleting a large tenant (closing collections, waiting for index builds) may take a while: not a dead consumer.
ACK_WAIT_S = 120.0
# Told (tenant, user or None); returns what was deleted (collections or documents), for the log.
Erase = Callable[[str, str | None], Awaitable[int]]
log = structlog.get_logger("threadline_retrieval.erasure")


class ErasureConsumer:
    """The durable consumer of erasures; :meth:`start` and :meth:`stop` bracket the gRPC server's life."""

    def __init__(self, settings: RetrievalSettings, erase: Erase) -> None:
        self._settings = settings
        self._erase = erase
        self.topology = settings.topology()
        self._nc: NatsClient | None = None

    async def start(self) -> None:
        self._nc = await nats.connect(
            self._settings.nats_url, name="threadline-retrieval-erasure", max_reconnect_attempts=-1
        )
        js = self._nc.jetstream()
        await ensure_streams(js, self.topology, [erasure_stream_config(self.topology)])
        # A push consumer in a queue group: each erasure goes to one replica, and nothing waits on a fetch at stop.
        await js.subscribe(
            self.topology.erasure,
            queue=CONSUMER,
            durable=CONSUMER,
            stream=self.topology.erasure_stream,
            cb=self.handle,
            manual_ack=True,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S),
        )
        log.info("erasure consumer ready", stream=self.topology.erasure_stream, consumer=CONSUMER)

    async def stop(self) -> None:
        """Stop taking erasures, let the one in flight finish, then close the connection."""
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    async def handle(self, msg: Msg) -> None:
        try:
            event = DataErased.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("malformed erasure event dropped", error=str(exc))
            await msg.term()  # redelivering cannot make it valid
            return
        try:
            deleted = await self._erase(event.tenant_id, event.user_id)
        except Exception:
            # A disk error, say: nothing was acked, so it comes back.
            log.exception("erasure failed; it will be redelivered", tenant_id=event.tenant_id)
            await msg.nak(delay=RETRY_DELAY_S)
            return
        if event.user_id is None:
            log.info("erased tenant's collections", tenant_id=event.tenant_id, collections=deleted)
        else:
            log.info("erased user's documents", tenant_id=event.tenant_id, documents=deleted)
        # Waits for the server's confirmation, so a redelivery after this point cannot happen.
        await msg.ack_sync()
