"""Cached answers forgotten when what they came from changes: a tenant erased, or its documents ingested.

Erasures arrive on the ERASURE stream through a durable consumer of the agent's own,
shared by its workers and acked only once the answers are gone, so an erasure
published while every worker was down is still acted on. Ingest outcomes are core
NATS in a queue group: missing one while no worker runs leaves answers that the
cache's TTL retires anyway, and documents deleted over gRPC announce nothing, so the
TTL remains the bound on staleness.
"""

from __future__ import annotations

import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError
from redis.exceptions import RedisError
from threadline.events import DataErased, IngestCompleted, IngestFailed, Topology, parse_ingest_event
from threadline.nats import ensure_streams, erasure_stream_config

from threadline_agent.worker.answer_cache import AnswerCache

CONSUMER = "agent-answer-cache"
RETRY_DELAY_S = 5.0
log = structlog.get_logger("threadline.agent")


async def forget_erased(nc: NatsClient, topology: Topology, cache: AnswerCache) -> Subscription:
    """Every erasure of a whole tenant drops that tenant's cached answers; returns the subscription.

    One user's erasure drops nothing: an answer is built from the tenant's documents, and
    the cache keeps no question text, only its hash. A push consumer in a queue group, so
    nothing waits on a fetch at shutdown and each erasure goes to one worker.
    """
    js = nc.jetstream()
    await ensure_streams(js, topology, [erasure_stream_config(topology)])

    async def on_erasure(msg: Msg) -> None:
        await _on_erasure(msg, cache)

    return await js.subscribe(
        topology.erasure,
        queue=CONSUMER,
        durable=CONSUMER,
        stream=topology.erasure_stream,
        cb=on_erasure,
        manual_ack=True,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )


async def _on_erasure(msg: Msg, cache: AnswerCache) -> None:
    try:
        event = DataErased.model_validate_json(msg.data)
    except ValidationError as exc:
        # Redelivering it would fail the same way: its publisher has a bug to fix. Until then the tenant's
        # cached answers live out their TTL.
        log.error("malformed erasure event dropped: fix its publisher (it is not a DataErased)", error=str(exc))
        await msg.term()
        return
    if event.user_id is None:
        try:
            dropped = await cache.drop_tenant(event.tenant_id)
        except RedisError as exc:
            log.warning(
                "cached answers of an erased tenant not dropped yet; retrying (check AGENT_ANSWER_CACHE_URL)",
                tenant_id=event.tenant_id,
                retry_in_s=RETRY_DELAY_S,
                error=str(exc),
            )
            await msg.nak(delay=RETRY_DELAY_S)
            return
        log.info("cached answers of an erased tenant dropped", tenant_id=event.tenant_id, answers=dropped)
    await msg.ack()


async def forget_on_ingest(nc: NatsClient, topology: Topology, cache: AnswerCache) -> Subscription:
    """Drop a tenant's cached answers whenever an ingest of it ends; returns the subscription.

    Only its end: a large ingest reports progress often, and each drop scans the cache's keys.
    A failed one may have stored some parts, so it counts too.
    """

    async def on_event(msg: Msg) -> None:
        try:
            event = parse_ingest_event(msg.data)
        except ValidationError:
            return  # not ours to judge: the ingest's own readers report it
        if isinstance(event, IngestCompleted | IngestFailed) and event.tenant_id:
            try:
                await cache.drop_tenant(event.tenant_id)
            except RedisError as exc:
                log.warning(
                    "cached answers not dropped after an ingest; they expire with AGENT_ANSWER_CACHE_TTL_S",
                    tenant_id=event.tenant_id,
                    error=str(exc),
                )

    return await nc.subscribe(topology.ingest_events_wildcard, queue=CONSUMER, cb=on_event)
