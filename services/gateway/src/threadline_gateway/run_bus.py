"""The gateway's side of NATS for runs: submitting them to the agents, storing their owners, following their events."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from opentelemetry import trace
from pydantic import BaseModel, Field
from threadline.events import RunRequested, Topology
from threadline.ids import is_run_id
from threadline.nats import RUN_EVENTS_MAX_AGE_S, cancelled_runs, ensure_streams
from threadline.run_events import RunError, RunEvent, RunResult
from threadline.telemetry import inject_headers

from threadline_gateway.errors import ApiError
from threadline_gateway.schemas import MultitaskStrategy, RunStatus

tracer = trace.get_tracer("threadline.gateway")

_CLAIM_ATTEMPTS = 5

RunOutcome = RunResult | RunError


def _outcome_of(final: RunEvent) -> RunOutcome:
    """A final event's payload, parsed once here so no caller reads the agent's keys by hand."""
    return final.result() if final.kind == "end" else final.failure()


def _status_of(outcome: RunOutcome) -> RunStatus:
    """The status a run that has ended reads as; a cancelled run is told apart from one that failed."""
    if isinstance(outcome, RunError):
        return "cancelled" if outcome.code == "cancelled" else "error"
    return outcome.status


class RunRecord(BaseModel):
    """Who owns a run, kept beside its events so any gateway replica can answer for it.

    The agent's events do not carry the tenant (the metadata event has run, thread and assistant),
    so the gateway stores the owner itself in a JetStream key-value bucket that expires with the
    RUN_EVENTS stream: a run is visible exactly as long as its events can be replayed.
    """

    run_id: str
    thread_id: str
    tenant_id: str
    assistant_id: str
    graph_id: str = ""  # empty in records stored before it was kept
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    multitask_strategy: MultitaskStrategy = "reject"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, run: RunRequested, multitask: MultitaskStrategy = "reject") -> RunRecord:
        return cls(
            run_id=run.run_id,
            thread_id=run.thread_id,
            tenant_id=run.tenant_id,
            assistant_id=run.assistant_id,
            graph_id=run.graph_id,
            created_at=run.created_at,
            multitask_strategy=multitask,
            metadata=run.metadata,
        )


def _runs_bucket(topology: Topology) -> str:
    """The gateway's run-owner bucket, one per namespace so test runs and deployments do not share it."""
    return f"{topology.namespace}-gateway-runs"


class RunBus:
    """The gateway's connection to NATS: publishes run requests, relays run events."""

    def __init__(
        self, nc: NatsClient, js: JetStreamContext, topology: Topology, runs: KeyValue, cancelled: KeyValue
    ) -> None:
        self.nc, self.js, self.topology, self.runs, self.cancelled = nc, js, topology, runs, cancelled

    @classmethod
    async def connect(cls, url: str, topology: Topology) -> RunBus:
        nc = await nats.connect(url, name="threadline-gateway", max_reconnect_attempts=-1, connect_timeout=5)
        js = nc.jetstream()
        await ensure_streams(js, topology)
        config = KeyValueConfig(
            bucket=_runs_bucket(topology), ttl=RUN_EVENTS_MAX_AGE_S, history=1, storage=StorageType.FILE
        )
        try:
            runs = await js.create_key_value(config)
        except BadRequestError:  # another replica created it first, perhaps with an older config
            runs = await js.key_value(config.bucket)
        return cls(nc, js, topology, runs, await cancelled_runs(js, topology))

    async def start(self, run: RunRequested, multitask: MultitaskStrategy = "reject") -> RunRequested:
        """Claim the run's thread, store the run's owner, then submit it; returns the run as submitted.

        A thread answers one run at a time: two runs at once would each build on the same checkpoint.
        While an earlier run of the thread is pending or running, ``multitask`` decides: ``reject`` is a
        409 ``thread_busy``; ``enqueue`` starts the new run once the earlier one has ended; ``interrupt``
        cancels the earlier run (its steps so far are kept) and then starts; ``rollback`` cancels it and
        starts from the thread's state before it, as if it had never run.
        """
        earlier = await self.remember(RunRecord.of(run, multitask), multitask)
        if earlier is not None:
            if multitask in ("interrupt", "rollback"):
                await self.cancel(earlier)
            run = run.model_copy(
                update={"after_run_id": earlier, "rollback_run_id": earlier if multitask == "rollback" else None}
            )
        await self.submit(run)
        return run

    async def remember(self, record: RunRecord, multitask: MultitaskStrategy = "reject") -> str | None:
        """Claim the thread and store the run's owner, so a run is never visible without one; returns the
        thread's earlier run that is still pending or running, if any (with ``reject``, that is a 409)."""
        earlier = await self._claim_thread(record, multitask)
        data = record.model_dump_json().encode()
        await self.runs.put(record.run_id, data)
        await self.runs.put(_thread_run_key(record.tenant_id, record.thread_id, record.run_id), data)
        return earlier

    async def thread_runs(self, tenant_id: str, thread_id: str) -> list[RunRecord]:
        """The thread's runs still kept (an hour, as their events), newest first.

        Each run is also stored under ``runs.<digest of tenant and thread>.<run_id>``, so a thread's runs are
        one watch on that key prefix: the server filters the subjects, the cost is the thread's runs, not
        the bucket's.
        """
        watcher = await self.runs.watch(f"{_thread_runs_prefix(tenant_id, thread_id)}.>", ignore_deletes=True)
        found: list[RunRecord] = []
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored
                    break
                if entry.value:
                    record = RunRecord.model_validate_json(entry.value)
                    if record.tenant_id == tenant_id and record.thread_id == thread_id:
                        found.append(record)
        finally:
            await watcher.stop()
        return sorted(found, key=lambda r: r.created_at, reverse=True)

    async def forget(self, record: RunRecord) -> None:
        """Delete a run that has ended: its owner, its place in its thread's listing and its stored events.

        A run without events would read ``pending``: if it is still its thread's latest, the thread's claim goes
        too (compare-and-delete, so a run that claims the thread meanwhile keeps it), or the thread would read busy.
        """
        key = _thread_key(record.tenant_id, record.thread_id)
        try:
            claim = await self.runs.get(key)
        except KeyNotFoundError:
            claim = None
        if claim is not None and claim.value == record.run_id.encode():
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.runs.delete(key, last=claim.revision)
        await self.runs.delete(_thread_run_key(record.tenant_id, record.thread_id, record.run_id))
        await self.runs.delete(record.run_id)
        await self.js.purge_stream(self.topology.run_events_stream, subject=self.topology.run_events(record.run_id))

    async def _claim_thread(self, record: RunRecord, multitask: MultitaskStrategy) -> str | None:
        """Make ``record`` the thread's latest run; returns the earlier run that is still pending or running, if any.

        The claim is a compare-and-set on the KV bucket, so of two racers one wins and the other
        is rejected (or, with another strategy, queued behind the winner).
        """
        key = _thread_key(record.tenant_id, record.thread_id)
        claim = record.run_id.encode()
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                await self.runs.create(key, claim)
                return None
            except KeyWrongLastSequenceError:
                entry = await self.runs.get(key)
            earlier = entry.value.decode() if entry.value else None
            active = earlier is not None and await self.status(earlier) in ("pending", "running")
            if active and multitask == "reject":
                raise _thread_busy(record.thread_id)
            try:
                await self.runs.update(key, claim, last=entry.revision)
            except KeyWrongLastSequenceError:
                if multitask == "reject":
                    raise _thread_busy(record.thread_id) from None
                continue  # another run claimed the thread meanwhile: look again, and follow that one
            return earlier if active else None
        raise _thread_busy(record.thread_id)

    async def thread_status(self, tenant_id: str, thread_id: str) -> Literal["idle", "busy", "interrupted"]:
        """``busy`` while the thread's latest run is pending or running, ``interrupted`` while it waits
        for a person's decision, else ``idle``."""
        try:
            entry = await self.runs.get(_thread_key(tenant_id, thread_id))
        except KeyNotFoundError:
            return "idle"
        if not entry.value:
            return "idle"
        status = await self.status(entry.value.decode())
        if status in ("pending", "running"):
            return "busy"
        return "interrupted" if status == "interrupted" else "idle"

    async def lookup(self, run_id: str, tenant_id: str) -> RunRecord | None:
        """The run if it exists and belongs to ``tenant_id``; another tenant's run is as absent as an unknown one."""
        if not is_run_id(run_id):  # else one id could read another's events (a subject token, a KV key)
            return None
        try:
            entry = await self.runs.get(run_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        record = RunRecord.model_validate_json(entry.value)
        return record if record.tenant_id == tenant_id else None

    async def status(self, run_id: str) -> RunStatus:
        """From the run's last stored event: none yet is pending, a final one is its outcome."""
        try:
            msg = await self.js.get_last_msg(self.topology.run_events_stream, self.topology.run_events(run_id))
        except NotFoundError:
            return "pending"
        event = RunEvent.model_validate_json(msg.data or b"")
        return _status_of(_outcome_of(event)) if event.is_final else "running"

    async def cancel(self, run_id: str) -> None:
        """Mark the run cancelled (a worker checks before starting it) and tell the worker on it now."""
        await self.cancelled.put(run_id, b"1")
        await self.nc.publish(self.topology.run_cancel(run_id), b"")

    async def close(self) -> None:
        if not self.nc.is_closed:  # a connection already lost has nothing left to drain
            await self.nc.drain()

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def submit(self, request: RunRequested) -> None:
        """Store the run durably, on its graph's subject; once this returns, the run will be executed even if
        no worker is up yet (a run for a graph no worker serves waits, pending, until one starts)."""
        subject = self.topology.runs_requested_for(request.graph_id)
        with tracer.start_as_current_span("publish runs.requested", kind=trace.SpanKind.PRODUCER) as span:
            span.set_attribute("threadline.run_id", request.run_id)
            span.set_attribute("threadline.graph_id", request.graph_id)
            span.set_attribute("messaging.destination.name", subject)
            # The run id as message id makes a retried publish a no-op instead of a second run.
            headers = inject_headers({"Nats-Msg-Id": request.run_id})
            await self.js.publish(subject, request.to_bytes(), headers=headers)

    @asynccontextmanager
    async def follow(self, run_id: str, after_seq: int = -1) -> AsyncIterator[RunEventStream]:
        """Subscribe to a run's events after ``after_seq``, from the first the agent published.

        Entered after :meth:`submit`, not before, and still safe: the ordered consumer replays the run's
        subject on the RUN_EVENTS stream from its start (``DeliverPolicy.ALL``; events are kept an hour),
        so an event published before the subscription is delivered, never missed. Subscribing first
        would only cost a subscription on every start, background runs and refused ones included.
        """
        stream = RunEventStream(after_seq)
        sub = await self.js.subscribe(
            self.topology.run_events(run_id),
            cb=stream.on_message,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        try:
            yield stream
        finally:
            await sub.unsubscribe()

    async def workers(self) -> tuple[int, int]:
        """(pull requests agent workers have outstanding, runs taken and not yet acked), over every graph's
        consumer; NotFoundError while no worker has ever made one."""
        prefix = self.topology.runs_consumer_prefix
        infos = [
            info
            for info in await self.js.consumers_info(self.topology.runs_stream)
            if (info.name or "").startswith(prefix)
        ]
        if not infos:
            raise NotFoundError(description=f"no {prefix}* consumer on {self.topology.runs_stream}")
        return sum(i.num_waiting or 0 for i in infos), sum(i.num_ack_pending or 0 for i in infos)


def _thread_key(tenant_id: str, thread_id: str) -> str:
    # KV keys allow few characters; thread ids allow more: the key is a digest of tenant and thread.
    return "thread." + hashlib.sha256(f"{tenant_id}:{thread_id}".encode()).hexdigest()[:40]


def _thread_runs_prefix(tenant_id: str, thread_id: str) -> str:
    return "runs." + hashlib.sha256(f"{tenant_id}:{thread_id}".encode()).hexdigest()[:40]


def _thread_run_key(tenant_id: str, thread_id: str, run_id: str) -> str:
    return f"{_thread_runs_prefix(tenant_id, thread_id)}.{run_id}"


def _thread_busy(thread_id: str) -> ApiError:
    return ApiError(
        409,
        "thread_busy",
        f"Thread {thread_id!r} is still answering an earlier question; wait for that run or cancel it.",
    )


class RunEventStream:
    """A run's events in order, without duplicates (a redelivered run may publish a seq twice)."""

    def __init__(self, after_seq: int) -> None:
        self._queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._last_seq = after_seq
        self._done = False

    async def on_message(self, msg: Msg) -> None:
        self._queue.put_nowait(RunEvent.model_validate_json(msg.data))

    def __aiter__(self) -> RunEventStream:
        return self

    async def __anext__(self) -> RunEvent:
        while not self._done:
            event = await self._queue.get()
            if event.seq <= self._last_seq:
                # A resume point at or past the final event: the client has seen the whole run.
                self._done = event.is_final
                continue
            self._last_seq = event.seq
            self._done = event.is_final
            return event
        raise StopAsyncIteration

    async def outcome(self) -> RunOutcome:
        """Skip to the run's final event: its result, or its failure."""
        async for event in self:
            if event.is_final:
                return _outcome_of(event)
        raise RuntimeError("the run's event stream ended without a final event")
