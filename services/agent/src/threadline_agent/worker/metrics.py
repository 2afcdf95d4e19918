"""The agent's Prometheus metrics, served on AGENT_METRICS_PORT (a worker has no other HTTP port).

Metrics live in a registry owned by the worker, not module globals, so two workers in one
process (as in tests) count separately.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from threadline.run_events import Usage

log = structlog.get_logger("threadline.agent")
QUEUE_POLL_S = 5.0


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "threadline_agent_runs",
            "Runs finished, by assistant and outcome.",
            ["assistant", "outcome"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "threadline_agent_run_duration_seconds",
            "Time from taking a run to its final event.",
            ["assistant"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.redeliveries = Counter(
            "threadline_agent_run_redeliveries",
            "Runs handed back to the queue after a transient failure.",
            registry=self.registry,
        )
        self.tokens = Counter(
            "threadline_agent_tokens",
            "Model tokens, by model and direction.",
            ["model", "direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "threadline_agent_cost_usd",
            "Estimated model cost in US dollars, by model (models priced in AGENT_MODEL_PRICES).",
            ["model"],
            registry=self.registry,
        )
        self.tenant_tokens = Counter(
            "threadline_agent_tenant_tokens",
            "Model tokens by tenant (input and output), the figure budgets hold tenants to.",
            ["tenant"],
            registry=self.registry,
        )
        self.tenant_cost = Counter(
            "threadline_agent_tenant_cost_usd",
            "Estimated model cost in US dollars, by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "threadline_agent_runs_in_flight", "Runs this worker is working.", registry=self.registry
        )
        self.queue = Gauge(
            "threadline_runs_queue",
            "Runs on a graph's RUNS consumer: waiting (pending) and taken but unacked (ack_pending).",
            ["graph", "state"],
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)

    def record_usage(self, model: str, usage: Usage, tenant_id: str) -> None:
        self.tokens.labels(model, "input").inc(usage.input_tokens)
        self.tokens.labels(model, "output").inc(usage.output_tokens)
        self.tenant_tokens.labels(tenant_id).inc(usage.input_tokens + usage.output_tokens)
        self.tenant_cost.labels(tenant_id).inc(usage.cost_usd or 0.0)
        if usage.cost_usd is not None:
            self.cost.labels(model).inc(usage.cost_usd)

    async def watch_queue(self, js: JetStreamContext, stream: str, consumers: Mapping[str, str]) -> None:
        """Each graph's consumer lag (``consumers``: graph id -> consumer), polled: JetStream has no push
        notification for it. Runs until cancelled."""
        while True:
            for graph, consumer in consumers.items():
                try:
                    info = await js.consumer_info(stream, consumer)
                    self.queue.labels(graph, "pending").set(info.num_pending or 0)
                    self.queue.labels(graph, "ack_pending").set(info.num_ack_pending or 0)
                except NatsError as exc:
                    log.debug("consumer info unavailable", consumer=consumer, error=str(exc))
            await asyncio.sleep(QUEUE_POLL_S)
