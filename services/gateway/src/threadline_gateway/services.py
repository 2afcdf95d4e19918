"""What the gateway holds while it serves: made once by the app's lifespan, closed by it, read by :mod:`deps`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from threadline.grpc import traced_channel
from threadline.retrieval.v1.retrieval_pb2_grpc import RetrievalServiceStub

from threadline_gateway.assistant_cache import CachingMemory
from threadline_gateway.auth import Authenticator
from threadline_gateway.budgets import Budgets
from threadline_gateway.chat_threads import ChatThreads
from threadline_gateway.crons import CronStore
from threadline_gateway.db import Database
from threadline_gateway.ingests import IngestBus
from threadline_gateway.memory import Memory
from threadline_gateway.metrics import GatewayMetrics
from threadline_gateway.ratelimit import Limiter, make_limiter
from threadline_gateway.run_bus import RunBus
from threadline_gateway.run_starter import RunStarter
from threadline_gateway.settings import GatewaySettings
from threadline_gateway.webhooks import WebhookSender, allowed_hosts


@dataclass(frozen=True)
class Services:
    settings: GatewaySettings
    metrics: GatewayMetrics
    authenticator: Authenticator
    database: Database | None
    limiter: Limiter
    budgets: Budgets
    bus: RunBus
    starter: RunStarter
    ingests: IngestBus
    retrieval: RetrievalServiceStub
    memory: Memory
    chat_threads: ChatThreads
    webhooks: WebhookSender
    crons: CronStore


@asynccontextmanager
async def open_services(
    settings: GatewaySettings, metrics: GatewayMetrics, authenticator: Authenticator, database: Database | None
) -> AsyncIterator[Services]:
    """Connect to NATS and the services behind the gateway; on the way out close whatever was opened.

    ``authenticator`` (and the database its API keys live in) is made before, by :func:`create_app`,
    so a misconfigured key stops the gateway before it serves anything.
    """
    async with AsyncExitStack() as opened:
        if database is not None:
            opened.push_async_callback(database.close)
            await database.prepare()
        limiter = make_limiter(settings)
        opened.push_async_callback(limiter.close)
        budgets = Budgets(settings.redis_url, settings.nats_namespace, settings.budgets)
        opened.push_async_callback(budgets.close)
        bus = await RunBus.connect(settings.nats_url, settings.topology())
        opened.push_async_callback(bus.close)
        retrieval_channel = traced_channel(settings.retrieval_target)
        opened.push_async_callback(retrieval_channel.close)
        retrieval = RetrievalServiceStub(retrieval_channel)
        memory_channel = traced_channel(settings.memory_target)
        opened.push_async_callback(memory_channel.close)
        memory = CachingMemory(memory_channel, settings.assistant_cache_ttl_s)
        webhooks = WebhookSender(
            bus.js,
            settings.topology(),
            bus,
            memory,
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            timeout_s=settings.webhook_timeout_s,
        )
        await webhooks.start()
        opened.push_async_callback(webhooks.stop)
        yield Services(
            settings=settings,
            metrics=metrics,
            authenticator=authenticator,
            database=database,
            limiter=limiter,
            budgets=budgets,
            bus=bus,
            starter=RunStarter(
                bus,
                metrics,
                settings.max_input_chars,
                memory,
                webhook_hosts=allowed_hosts(settings.webhook_hosts),
                retrieval=retrieval,
                budgets=budgets if settings.budgets else None,
            ),
            ingests=await IngestBus.create(bus.js, settings.topology(), bus.nc.max_payload),
            retrieval=retrieval,
            memory=memory,
            chat_threads=ChatThreads(bus.js, settings.topology(), settings.chat_thread_ttl_s),
            webhooks=webhooks,
            crons=CronStore(memory_channel),
        )
