"""JetStream streams that carry Threadline's events, declared once and shared by every service."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from threadline.events import Topology

log = structlog.get_logger("threadline")

RUN_EVENTS_MAX_AGE_S = 3600.0
RUN_DEDUPE_WINDOW_S = 120.0
WEBHOOK_DEDUPE_WINDOW_S = 600.0
INGEST_EVENTS_MAX_AGE_S = 24 * 3600.0
INGEST_DEDUPE_WINDOW_S = 600.0
# Long enough for a service that was down for a while to catch up on the erasures it missed.
ERASURE_MAX_AGE_S = 30 * 24 * 3600.0


def stream_configs(topology: Topology) -> list[StreamConfig]:
    """RUNS is a work queue (each run taken by one worker); RUN_EVENTS keeps an hour of events for replay;
    WEBHOOKS is a work queue of the webhooks due (each delivered by one gateway)."""
    return [
        StreamConfig(
            name=topology.runs_stream,
            subjects=[topology.runs_requested_wildcard],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=RUN_DEDUPE_WINDOW_S,
        ),
        StreamConfig(
            name=topology.run_events_stream,
            subjects=[topology.run_events_wildcard],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=RUN_EVENTS_MAX_AGE_S,
            discard=DiscardPolicy.OLD,
        ),
        StreamConfig(  # runs that ended and whose outcome a gateway must POST to their webhook
            name=topology.webhooks_stream,
            subjects=[topology.webhooks_due],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=WEBHOOK_DEDUPE_WINDOW_S,
            max_age=RUN_EVENTS_MAX_AGE_S,  # a webhook is sent while its run's events can still be read
        ),
    ]


def erasure_stream_config(topology: Topology) -> StreamConfig:
    """ERASURE keeps a month of erasures for every service to act on, each with a durable consumer of its
    own; declared by the memory service, which publishes them, and by any consumer before it subscribes."""
    return StreamConfig(
        name=topology.erasure_stream,
        subjects=[topology.erasure],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=ERASURE_MAX_AGE_S,
        discard=DiscardPolicy.OLD,
    )


def ingest_stream_configs(topology: Topology) -> list[StreamConfig]:
    """INGEST is a work queue (each ingest taken by one retrieval replica); INGEST_EVENTS keeps a day of outcomes."""
    return [
        StreamConfig(
            name=topology.ingest_stream,
            subjects=[topology.ingest_requested],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=INGEST_DEDUPE_WINDOW_S,
        ),
        StreamConfig(
            name=topology.ingest_events_stream,
            subjects=[topology.ingest_events_wildcard],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=INGEST_EVENTS_MAX_AGE_S,
            discard=DiscardPolicy.OLD,
        ),
    ]


async def ensure_streams(js: JetStreamContext, topology: Topology, configs: list[StreamConfig] | None = None) -> None:
    """Create the streams (the runs' by default), or bring an existing one up to date; safe from any process."""
    for config in configs if configs is not None else stream_configs(topology):
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


async def retire_legacy_runs_consumer(js: JetStreamContext, topology: Topology) -> bool:
    """Delete the unfiltered ``agent-workers`` consumer of the time before runs had a subject per graph.

    A work-queue stream refuses consumers whose subjects overlap, so the graphs' filtered consumers
    cannot be made while it exists. Runs it had handed out and not acked stay on the stream.
    Returns whether there was one.
    """
    try:
        return await js.delete_consumer(topology.runs_stream, topology.legacy_runs_consumer)
    except NotFoundError:
        return False


async def cancelled_runs(js: JetStreamContext, topology: Topology) -> KeyValue:
    """The bucket of cancelled run ids (kept as long as run events are): the gateway writes, workers read."""
    config = KeyValueConfig(
        bucket=topology.cancelled_runs_bucket, ttl=RUN_EVENTS_MAX_AGE_S, history=1, storage=StorageType.FILE
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError:  # made by another process first
        return await js.key_value(config.bucket)


class InProgress(Protocol):
    async def in_progress(self) -> None: ...


async def keep_alive(msg: InProgress, every_s: float) -> None:
    """Tell JetStream every ``every_s`` that the message is still being worked on, so it is not
    redelivered to another consumer meanwhile; runs until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await msg.in_progress()
        except NatsError as exc:  # reconnecting: the next beat may get through before ack_wait runs out
            log.warning("in-progress ack failed", error=str(exc))
