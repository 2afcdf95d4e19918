"""Crons: the memory service's CronService as the gateway calls it, and the ticker that starts their runs.

A cron is stored per tenant in the memory service (PostgreSQL or SQLite), so it survives any
restart. Every gateway replica runs a :class:`CronTicker` (started and stopped by the app's
lifespan): every ``GATEWAY_CRON_INTERVAL_S`` it calls ``ClaimDueCrons``, which hands each due tick
to exactly one caller (the claim and the advance of the cron's ``next_run_at`` are one transaction,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and starts each claimed tick as a run through
:meth:`RunStarter.start` for the cron's tenant. The run's id (its ``Nats-Msg-Id``) and, for a cron
without a thread, its thread's id are derived from the cron's id and the tick, so a start that is
retried is still one run. A replica that dies between claiming a tick and publishing its run loses
that one tick: a tick fires at most once, and the next one comes as scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import CronServiceStub

from threadline_gateway.auth import Principal
from threadline_gateway.errors import ApiError
from threadline_gateway.memory import memory_errors

log = structlog.get_logger("threadline.gateway.crons")

TIMEOUT_S = 10.0
_TICK_NAMESPACE = uuid.UUID("5b0c3f0e-8d53-4b8e-9a0e-2f1c6f1e7c11")


def _time(value: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Cron:
    tenant_id: str
    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    enabled: bool
    end_time: dt.datetime | None
    next_run_at: dt.datetime | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    user_id: str | None = None
    on_run_completed: str | None = None

    @classmethod
    def of(cls, wire: pb.Cron) -> Cron:
        return cls(
            tenant_id=wire.tenant_id,
            cron_id=wire.cron_id,
            assistant_id=wire.assistant_id,
            thread_id=wire.thread_id or None,
            schedule=wire.schedule,
            timezone=wire.timezone,
            payload=json.loads(wire.payload_json or b"{}"),
            metadata=json.loads(wire.metadata_json or b"{}"),
            enabled=wire.enabled,
            end_time=_time(wire.end_time),
            next_run_at=_time(wire.next_run_at),
            created_at=_time(wire.created_at),
            updated_at=_time(wire.updated_at),
            user_id=wire.user_id or None,
            on_run_completed=wire.on_run_completed or None,
        )

    def as_langgraph(self) -> dict[str, Any]:
        """The cron as LangGraph Platform's API shows it."""

        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "cron_id": self.cron_id,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "on_run_completed": self.on_run_completed,
            "end_time": iso(self.end_time),
            "schedule": self.schedule,
            "timezone": self.timezone or None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "payload": self.payload,
            "user_id": self.user_id,
            "next_run_date": iso(self.next_run_at),
            "metadata": self.metadata,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class CronChanges:
    """An update; ``None`` leaves a field as it is. ``end_time`` is changed when ``set_end_time``."""

    schedule: str | None = None
    timezone: str | None = None
    payload: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    enabled: bool | None = None
    set_end_time: bool = False
    end_time: dt.datetime | None = None
    on_run_completed: str | None = None


@dataclass(frozen=True)
class CronQuery:
    assistant_id: str = ""
    thread_id: str = ""
    enabled: bool | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sort_by: str = ""
    sort_order: str = ""


@asynccontextmanager
async def _crons_errors(cron_id: str | None = None) -> AsyncIterator[None]:
    """The memory service's errors as the client's: NOT_FOUND names the cron, the rest as :func:`memory_errors`."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"No cron {cron_id!r}.") from exc
        async with memory_errors():
            raise


class CronStore:
    """The CronService of the memory service, on the gateway's memory channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = CronServiceStub(channel)

    async def create(self, cron: pb.Cron) -> Cron:
        async with _crons_errors():
            return Cron.of(await self._stub.CreateCron(pb.CreateCronRequest(cron=cron), timeout=TIMEOUT_S))

    async def get(self, tenant_id: str, cron_id: str) -> Cron:
        async with _crons_errors(cron_id):
            reply = await self._stub.GetCron(pb.GetCronRequest(tenant_id=tenant_id, cron_id=cron_id), timeout=TIMEOUT_S)
        return Cron.of(reply)

    async def update(self, tenant_id: str, cron_id: str, changes: CronChanges) -> Cron:
        request = pb.UpdateCronRequest(tenant_id=tenant_id, cron_id=cron_id)
        if changes.schedule is not None:
            request.schedule = changes.schedule
        if changes.timezone is not None:
            request.timezone = changes.timezone
        if changes.payload is not None:
            request.payload_json = json.dumps(changes.payload).encode()
        if changes.metadata is not None:
            request.metadata_json = json.dumps(changes.metadata).encode()
        if changes.enabled is not None:
            request.enabled = changes.enabled
        if changes.set_end_time:
            request.end_time = changes.end_time.isoformat() if changes.end_time else ""
        if changes.on_run_completed is not None:
            request.on_run_completed = changes.on_run_completed
        async with _crons_errors(cron_id):
            return Cron.of(await self._stub.UpdateCron(request, timeout=TIMEOUT_S))

    async def delete(self, tenant_id: str, cron_id: str) -> None:
        async with _crons_errors(cron_id):
            await self._stub.DeleteCron(pb.GetCronRequest(tenant_id=tenant_id, cron_id=cron_id), timeout=TIMEOUT_S)

    def _search(self, tenant_id: str, query: CronQuery, limit: int = 0, offset: int = 0) -> pb.SearchCronsRequest:
        request = pb.SearchCronsRequest(
            tenant_id=tenant_id,
            assistant_id=query.assistant_id,
            thread_id=query.thread_id,
            metadata_json=json.dumps(query.metadata).encode() if query.metadata else b"",
            limit=limit,
            offset=offset,
            sort_by=query.sort_by,
            sort_order=query.sort_order,
        )
        if query.enabled is not None:
            request.enabled = query.enabled
        return request

    async def search(self, tenant_id: str, query: CronQuery, *, limit: int, offset: int) -> list[Cron]:
        async with _crons_errors():
            reply = await self._stub.SearchCrons(self._search(tenant_id, query, limit, offset), timeout=TIMEOUT_S)
        return [Cron.of(c) for c in reply.crons]

    async def count(self, tenant_id: str, query: CronQuery) -> int:
        async with _crons_errors():
            reply = await self._stub.CountCrons(self._search(tenant_id, query), timeout=TIMEOUT_S)
        return reply.count

    async def claim_due(self, limit: int) -> list[tuple[Cron, str]]:
        """The due ticks this caller now owns (cron, tick time), each claimed by no other caller."""
        async with _crons_errors():
            reply = await self._stub.ClaimDueCrons(pb.ClaimDueCronsRequest(limit=limit), timeout=TIMEOUT_S)
        return [(Cron.of(t.cron), t.tick) for t in reply.ticks]


def tick_ids(cron_id: str, tick: str) -> tuple[str, str]:
    """The run id and the (stateless) thread id of one tick of a cron: the same however often asked."""
    name = f"{cron_id}@{tick}"
    return str(uuid.uuid5(_TICK_NAMESPACE, f"run:{name}")), str(uuid.uuid5(_TICK_NAMESPACE, f"thread:{name}"))


def cron_principal(cron: Cron) -> Principal:
    """Who a cron's runs run as: the cron's tenant, and the person who made it (their ``user_id`` label)."""
    return Principal(tenant_id=cron.tenant_id, subject=f"cron:{cron.cron_id}", kind="api_key", user_id=cron.user_id)


class CronTicker:
    """Claims due crons every ``interval_s`` and starts each tick's run with ``start`` (one replica's ticker)."""

    def __init__(
        self, store: CronStore, start: Callable[[Cron, str], Awaitable[Any]], interval_s: float, batch: int = 100
    ) -> None:
        self.store, self._start, self.interval_s, self.batch = store, start, interval_s, batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cron-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except ApiError as exc:  # the memory service is down: the crons wait for the next try
                if not failing:  # once per outage, not every interval
                    log.warning("claiming due crons failed; trying again every interval", error=exc.message)
                failing = True
            except Exception:
                log.exception("cron ticker failed; going on")
            else:
                if failing:
                    log.info("claiming due crons works again")
                failing = False

    async def tick(self) -> int:
        """Claim the due crons and start their runs; how many were started."""
        started = 0
        while claimed := await self.store.claim_due(self.batch):
            for cron, tick in claimed:
                try:
                    await self._start(cron, tick)
                    started += 1
                except ApiError as exc:  # e.g. the thread is busy (reject) or the assistant is gone
                    log.warning(
                        "cron's run not started", cron_id=cron.cron_id, tick=tick, code=exc.code, error=exc.message
                    )
                except Exception:  # one bad cron must not cost the others their tick
                    log.exception("cron's run not started", cron_id=cron.cron_id, tick=tick)
            if len(claimed) < self.batch:
                break
        return started
