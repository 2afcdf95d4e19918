"""The gRPC CronService: each tenant's scheduled runs, and the claiming of their due ticks by the gateways.

Scoped like threads and assistants: every call but :meth:`ClaimDueCrons` names its tenant, and
another tenant's cron is NOT_FOUND. ``ClaimDueCrons`` is the gateways' (it spans tenants: each tick
carries its cron's tenant, the run's tenant). See :mod:`threadline_memory.crons`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import grpc
from threadline.grpc import BadRequest, abort_on_error
from threadline.ids import ID_PATTERN, check_tenant_id
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc

from threadline_memory.crons import BadSchedule, CronChanges, CronRow, next_tick, zone
from threadline_memory.fields import json_object
from threadline_memory.storage import Storage

SERVICE_NAME = memory_pb2.DESCRIPTOR.services_by_name["CronService"].full_name
_MAX_LIMIT = 1000
_MAX_CLAIM = 500
_SORT_BY = ("created_at", "updated_at", "next_run_date", "cron_id", "assistant_id", "thread_id")
_MAX_SCHEDULE = 256
ID_PATTERN_RE = re.compile(ID_PATTERN)


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat() if value is not None else ""


def cron_out(row: CronRow) -> memory_pb2.Cron:
    return memory_pb2.Cron(
        tenant_id=row.tenant_id,
        cron_id=row.cron_id,
        assistant_id=row.assistant_id,
        thread_id=row.thread_id or "",
        schedule=row.schedule,
        timezone=row.timezone,
        payload_json=json.dumps(row.payload).encode(),
        metadata_json=json.dumps(row.metadata).encode(),
        enabled=row.enabled,
        end_time=_time(row.end_time),
        next_run_at=_time(row.next_run_at),
        created_at=_time(row.created_at),
        updated_at=_time(row.updated_at),
        user_id=row.user_id or "",
        on_run_completed=row.on_run_completed,
    )


def _parse_time(value: str, field: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(f"{field} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _schedule(schedule: str, timezone: str) -> None:
    """BadRequest unless ``schedule`` parses in ``timezone``."""
    if not schedule or len(schedule) > _MAX_SCHEDULE:
        raise BadRequest(f"schedule must be a cron expression of 1-{_MAX_SCHEDULE} characters")
    try:
        zone(timezone)
        next_tick(schedule, timezone, dt.datetime.now(dt.UTC))
    except BadSchedule as exc:
        raise BadRequest(str(exc)) from exc


def _id(value: str, field: str) -> str:
    if not ID_PATTERN_RE.fullmatch(value):
        raise BadRequest(f"{field} must match {ID_PATTERN}")
    return value


class CronServicer(memory_pb2_grpc.CronServiceServicer):
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._crons = storage.crons

    async def CreateCron(self, request: memory_pb2.CreateCronRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            wanted = request.cron
            tenant = check_tenant_id(wanted.tenant_id)
            _schedule(wanted.schedule, wanted.timezone)
            row = CronRow(
                tenant_id=tenant,
                cron_id=_id(wanted.cron_id, "cron_id") if wanted.cron_id else str(uuid.uuid4()),
                assistant_id=_id(wanted.assistant_id, "assistant_id"),
                thread_id=_id(wanted.thread_id, "thread_id") if wanted.thread_id else None,
                schedule=wanted.schedule,
                timezone=wanted.timezone,
                payload=json_object(wanted.payload_json or b"{}", "payload_json"),
                metadata=json_object(wanted.metadata_json or b"{}", "metadata_json"),
                enabled=wanted.enabled,
                end_time=_parse_time(wanted.end_time, "end_time") if wanted.end_time else None,
                next_run_at=None,
                created_at=dt.datetime.now(dt.UTC),
                updated_at=dt.datetime.now(dt.UTC),
                user_id=wanted.user_id or None,
                on_run_completed=wanted.on_run_completed,
            )
            created = await self._storage.run("create_cron", lambda _: self._crons.create(row))
        return cron_out(created)

    async def GetCron(self, request: memory_pb2.GetCronRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            found = await self._storage.run("get_cron", lambda _: self._crons.get(tenant, request.cron_id))
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no cron {request.cron_id!r}")
        return cron_out(found)

    async def UpdateCron(self, request: memory_pb2.UpdateCronRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            current = await self._storage.run("get_cron", lambda _: self._crons.get(tenant, request.cron_id))
            if current is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no cron {request.cron_id!r}")
            schedule = request.schedule if request.HasField("schedule") else None
            timezone = request.timezone if request.HasField("timezone") else None
            _schedule(
                current.schedule if schedule is None else schedule, current.timezone if timezone is None else timezone
            )
            changes = CronChanges(
                schedule=schedule,
                timezone=timezone,
                payload=json_object(request.payload_json, "payload_json") if request.HasField("payload_json") else None,
                metadata=json_object(request.metadata_json, "metadata_json")
                if request.HasField("metadata_json")
                else {},
                enabled=request.enabled if request.HasField("enabled") else None,
                set_end_time=request.HasField("end_time"),
                end_time=_parse_time(request.end_time, "end_time") if request.end_time else None,
                on_run_completed=request.on_run_completed if request.HasField("on_run_completed") else None,
            )
            updated = await self._storage.run(
                "update_cron", lambda _: self._crons.update(tenant, request.cron_id, changes)
            )
        if updated is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no cron {request.cron_id!r}")
        return cron_out(updated)

    async def DeleteCron(self, request: memory_pb2.GetCronRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            deleted = await self._storage.run("delete_cron", lambda _: self._crons.delete(tenant, request.cron_id))
        if not deleted:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no cron {request.cron_id!r}")
        return memory_pb2.DeleteCronResponse()

    async def _search(self, request: memory_pb2.SearchCronsRequest) -> list[CronRow]:
        tenant = check_tenant_id(request.tenant_id)
        metadata = json_object(request.metadata_json, "metadata_json") if request.metadata_json else {}
        sort_by = request.sort_by or "created_at"
        if sort_by not in _SORT_BY:
            raise BadRequest(f"sort_by must be one of {', '.join(_SORT_BY)}")
        if request.sort_order not in ("", "asc", "desc"):
            raise BadRequest("sort_order must be asc or desc")
        return await self._storage.run(
            "search_crons",
            lambda _: self._crons.search(
                tenant,
                assistant_id=request.assistant_id,
                thread_id=request.thread_id,
                enabled=request.enabled if request.HasField("enabled") else None,
                metadata=metadata,
                sort_by=sort_by,
                sort_order=request.sort_order or "desc",
            ),
        )

    async def SearchCrons(self, request: memory_pb2.SearchCronsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            limit = request.limit or 10
            if not 1 <= limit <= _MAX_LIMIT or request.offset < 0:
                raise BadRequest(f"limit must be 1-{_MAX_LIMIT} and offset 0 or more")
            rows = await self._search(request)
        return memory_pb2.SearchCronsResponse(
            crons=[cron_out(r) for r in rows[request.offset : request.offset + limit]]
        )

    async def CountCrons(self, request: memory_pb2.SearchCronsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            rows = await self._search(request)
        return memory_pb2.CountCronsResponse(count=len(rows))

    async def ClaimDueCrons(self, request: memory_pb2.ClaimDueCronsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            now = _parse_time(request.now, "now") if request.now else dt.datetime.now(dt.UTC)
            limit = request.limit or 100
            if not 1 <= limit <= _MAX_CLAIM:
                raise BadRequest(f"limit must be 1-{_MAX_CLAIM}")
            claimed = await self._storage.run("claim_due_crons", lambda _: self._crons.claim_due(now, limit))
        return memory_pb2.ClaimDueCronsResponse(
            ticks=[memory_pb2.ClaimedTick(cron=cron_out(row), tick=_time(tick)) for row, tick in claimed]
        )
