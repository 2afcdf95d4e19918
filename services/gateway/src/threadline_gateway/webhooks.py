"""Webhooks: a run started with ``webhook`` has its outcome POSTed there once it has ended.

The agent worker that ends such a run publishes a :class:`~threadline.events.WebhookDue` on the
``WEBHOOKS`` work-queue stream (after the run's final event is stored, before it acks the run), so
the announcement is as durable as the run. Every gateway replica pulls from one durable consumer,
``gateway-webhooks``: each webhook is delivered by one replica, acked after a 2xx answer, handed back
with a growing delay otherwise, and dropped with a warning after ``GATEWAY_WEBHOOK_MAX_ATTEMPTS``
deliveries. A replica that dies mid-delivery leaves the message unacked, and another replica takes
it after the ack wait. Delivery is at least once: a receiver should key on ``run_id``.

The body is LangGraph Platform's: the run object (``run_id``, ``thread_id``, ``assistant_id``,
``status``, ``metadata``, ...) with ``values`` (the graph's final values) on success and ``error``
when it failed, plus ``webhook_sent_at``.

A URL is checked when the run starts (:func:`webhook_errors`): http or https with a host, and, when
``GATEWAY_WEBHOOK_HOSTS`` names hosts, one of them. POSTing to any URL a caller names is a
server-side request forgery risk (the gateway may reach internal addresses the caller cannot), so
production deployments should set the allow-list.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError
from threadline.events import Topology, WebhookDue
from threadline.run_events import RunError, RunResult

from threadline_gateway.errors import ApiError
from threadline_gateway.memory import Memory
from threadline_gateway.run_bus import RunBus
from threadline_gateway.run_handle import RunHandle

log = structlog.get_logger("threadline.gateway.webhooks")

_FETCH_BATCH = 16
_FETCH_TIMEOUT_S = 1.0
_MAX_DELAY_S = 300.0


def allowed_hosts(setting: str) -> frozenset[str]:
    """``GATEWAY_WEBHOOK_HOSTS`` as a set of lower-case host names; empty: any host."""
    return frozenset(h.strip().lower() for h in setting.split(",") if h.strip())


def webhook_errors(url: str, hosts: frozenset[str]) -> str | None:
    """Why ``url`` may not be a webhook, or None when it may."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "must be an http or https URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http or https URL"
    if hosts and host.lower() not in hosts:
        return "must name a host allowed by GATEWAY_WEBHOOK_HOSTS"
    return None


def _status(outcome: Any) -> str:
    """The run's status as LangGraph Platform reports it in a webhook."""
    if isinstance(outcome, RunError):
        return "interrupted" if outcome.code == "cancelled" else "error"
    return str(outcome.status)


class WebhookSender:
    """The gateway's consumer of due webhooks: started and stopped by the app's lifespan."""

    def __init__(
        self,
        js: JetStreamContext,
        topology: Topology,
        bus: RunBus,
        memory: Memory,
        *,
        max_attempts: int,
        backoff_s: float,
        timeout_s: float,
    ) -> None:
        self.js, self.topology, self.bus, self.memory = js, topology, bus, memory
        self.max_attempts, self.backoff_s, self.timeout_s = max_attempts, backoff_s, timeout_s
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self._http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=self.topology.webhooks_consumer,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=2 * self.timeout_s + 30,  # a replica that died mid-delivery hands it on after this
            max_ack_pending=256,
        )
        self._sub = sub = await self.js.pull_subscribe(
            self.topology.webhooks_due,
            durable=self.topology.webhooks_consumer,
            stream=self.topology.webhooks_stream,
            config=config,
        )
        self._task = asyncio.create_task(self._pull(sub), name="webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:  # before the connection drains, which would wait on its pull requests
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()
        await self._http.aclose()

    async def _pull(self, sub: Any) -> None:
        while True:
            try:
                msgs = await sub.fetch(_FETCH_BATCH, timeout=_FETCH_TIMEOUT_S)
            except (TimeoutError, NatsTimeoutError):
                continue
            except NatsError as exc:
                log.warning("fetching due webhooks failed; trying again", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            await asyncio.gather(*(self._handle(m) for m in msgs))

    async def _handle(self, msg: Any) -> None:
        try:
            due = WebhookDue.from_bytes(msg.data)
        except ValidationError as exc:
            log.error("malformed webhook event dropped", error=str(exc))
            await msg.term()
            return
        attempt = msg.metadata.num_delivered or 1
        try:
            delivered = await self.deliver(due)
        except Exception as exc:
            log.warning("building a webhook's body failed", run_id=due.run_id, error=str(exc))
            delivered = False
        try:
            if delivered:
                await msg.ack()
            elif attempt >= self.max_attempts:
                log.warning("webhook not delivered; giving up", run_id=due.run_id, attempts=attempt, url=due.webhook)
                await msg.term()
            else:
                await msg.nak(delay=min(self.backoff_s * 2 ** (attempt - 1), _MAX_DELAY_S))
        except NatsError as exc:  # not acked: redelivered after the ack wait
            log.warning("acknowledging a webhook failed", run_id=due.run_id, error=str(exc))

    async def body(self, due: WebhookDue) -> dict[str, Any] | None:
        """The run object with its outcome, as LangGraph Platform POSTs it; None if the run is no longer known."""
        record = await self.bus.lookup(due.run_id, due.tenant_id)
        if record is None:
            return None
        outcome = await RunHandle(record, self.bus).outcome(self.timeout_s)
        created = record.created_at.isoformat()
        body: dict[str, Any] = {
            "run_id": record.run_id,
            "thread_id": record.thread_id,
            "assistant_id": record.assistant_id,
            "created_at": created,
            "updated_at": due.ended_at.isoformat(),
            "run_started_at": created,
            "run_ended_at": due.ended_at.isoformat(),
            "status": _status(outcome),
            "metadata": record.metadata,
            "multitask_strategy": record.multitask_strategy,
            "kwargs": {},
            "values": None,
        }
        if isinstance(outcome, RunError):
            body["error"] = outcome.message or outcome.code
        elif outcome.output is not None:
            body["values"] = outcome.output
        else:
            latest = await self.memory.latest(record.tenant_id, record.thread_id)
            body["values"] = latest.values if latest else {}
        if isinstance(outcome, RunResult) and outcome.structured_response is not None:  # as runs.wait gives it
            body["values"] = {**(body["values"] or {}), "structured_response": outcome.structured_response}
        return body

    async def deliver(self, due: WebhookDue) -> bool:
        """POST the run's outcome to its webhook; whether the receiver took it (a 2xx)."""
        try:
            body = await self.body(due)
        except ApiError as exc:
            log.warning("run of a webhook unreadable; trying again", run_id=due.run_id, error=exc.message)
            return False
        if body is None:
            log.warning("run of a webhook is no longer known; dropped", run_id=due.run_id)
            return True
        body["webhook_sent_at"] = datetime.now(UTC).isoformat()
        try:
            response = await self._http.post(due.webhook, json=body)
        except httpx.HTTPError as exc:
            log.info("webhook POST failed", run_id=due.run_id, error=str(exc))
            return False
        if response.is_success:
            log.info("webhook delivered", run_id=due.run_id, status=response.status_code)
            return True
        log.info("webhook refused", run_id=due.run_id, status=response.status_code)
        return False
