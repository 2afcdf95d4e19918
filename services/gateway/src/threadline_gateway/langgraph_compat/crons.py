"""``/langgraph/runs/crons`` and ``/langgraph/threads/{thread_id}/runs/crons``: LangGraph Platform's crons.

A cron starts a run at every tick of its schedule (a five-field cron expression, in its IANA
``timezone``, UTC by default): on a new thread each time, or on the cron's thread. What the run
gets (``input``, ``config``, ``context``, ``webhook``, ``multitask_strategy``, ``stream_mode``) is
checked when the cron is made, as a run's body would be (a 422 names the field), and kept as the
cron's ``payload``. The crons are stored by the memory service; every gateway replica's ticker
claims the due ones there and starts them (:mod:`threadline_gateway.crons`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from threadline.ids import ID_PATTERN
from threadline.memory.v1 import memory_pb2 as pb

from threadline_gateway.auth import Principal
from threadline_gateway.crons import Cron, CronChanges, CronQuery, CronStore, CronTicker, cron_principal, tick_ids
from threadline_gateway.deps import Caller, Crons, MemoryClient, Settings, Starter
from threadline_gateway.langgraph_compat.runs import _command, _config, _question
from threadline_gateway.langgraph_compat.schemas import RunCreate, StreamMode
from threadline_gateway.memory import Memory
from threadline_gateway.run_starter import NewRun, RunStarter
from threadline_gateway.schemas import MultitaskStrategy, error_responses
from threadline_gateway.services import Services
from threadline_gateway.settings import GatewaySettings

router = APIRouter()
ThreadId = Annotated[str, Path(pattern=ID_PATTERN)]
CronId = Annotated[str, Path(pattern=ID_PATTERN)]
# The body fields that make the run a tick starts (the cron's payload); the rest are the cron's own.
_RUN_FIELDS = ("input", "command", "config", "context", "webhook", "multitask_strategy", "stream_mode")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CronCreate(_Lenient):
    assistant_id: str = Field(pattern=ID_PATTERN)
    schedule: str = Field(min_length=1, max_length=256, description="A cron expression: minute hour day month weekday.")
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = Field(default=None, max_length=2048)
    multitask_strategy: MultitaskStrategy | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    end_time: dt.datetime | None = None
    enabled: bool = True
    timezone: str | None = Field(default=None, max_length=64, description="IANA name; unset: UTC.")
    on_run_completed: Literal["delete", "keep"] | None = None


class CronPatch(_Lenient):
    schedule: str | None = Field(default=None, min_length=1, max_length=256)
    end_time: dt.datetime | None = None
    input: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = Field(default=None, max_length=2048)
    enabled: bool | None = None
    timezone: str | None = Field(default=None, max_length=64)
    stream_mode: StreamMode | list[StreamMode] | None = None
    on_run_completed: Literal["delete", "keep"] | None = None


CronSortBy = Literal["created_at", "updated_at", "next_run_date", "cron_id", "assistant_id", "thread_id"]


class CronSearch(_Lenient):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    sort_by: CronSortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None


class CronCount(_Lenient):
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


def _run_body(payload: dict[str, Any], assistant_id: str, metadata: dict[str, Any]) -> RunCreate:
    return RunCreate.model_validate({**payload, "assistant_id": assistant_id, "metadata": metadata})


def _new_run(
    payload: dict[str, Any],
    assistant_id: str,
    thread_id: str | None,
    metadata: dict[str, Any],
    settings: GatewaySettings,
    tick: tuple[str, str] | None = None,
) -> NewRun:
    """The run a tick of a cron with this ``payload`` starts, on the cron's ``thread_id`` (None: a new thread
    each tick); ``tick``: the run id and new thread the tick derives (None: a check, before any tick)."""
    run_id, new_thread = tick or (None, None)
    body = _run_body(payload, assistant_id, metadata)
    resume, command = _command(body)
    claimed = body.metadata.get("user_id")
    multitask: MultitaskStrategy = payload.get("multitask_strategy") or ("enqueue" if thread_id else "reject")
    return NewRun(
        input=_question(body, settings),
        assistant_id=assistant_id,
        thread_id=thread_id or new_thread,
        user_id=claimed if isinstance(claimed, str) else None,
        metadata=body.metadata,
        stream_modes=sorted(body.stream_modes()),
        resume=resume,
        command=command,
        config=_config(body),
        context=body.context,
        multitask=multitask,
        webhook=body.webhook,
        run_id=run_id,
    )


async def _checked_payload(
    starter: RunStarter,
    principal: Principal,
    settings: GatewaySettings,
    payload: dict[str, Any],
    assistant_id: str,
    thread_id: str | None,
) -> dict[str, Any]:
    """The run a tick starts, checked now as a run would be (a 422 names a bad field, a 404 an assistant
    or collection that does not exist), so that no tick of a cron fails for what was wrong when it was made."""
    payload = {k: v for k, v in payload.items() if v is not None}
    await starter.checked(principal, _new_run(payload, assistant_id, thread_id, {}, settings))
    return payload


def _langgraph(cron: Cron) -> dict[str, Any]:
    return cron.as_langgraph()


async def _create(
    body: CronCreate,
    thread_id: str | None,
    principal: Principal,
    settings: GatewaySettings,
    starter: RunStarter,
    memory: Memory,
    crons: CronStore,
) -> dict[str, Any]:
    tenant = principal.tenant_id
    given = body.model_dump(include=set(_RUN_FIELDS))
    payload = await _checked_payload(starter, principal, settings, given, body.assistant_id, thread_id)
    if thread_id is not None:
        await memory.get_thread(tenant, thread_id)  # 404 for a thread that was never created
    claimed = body.metadata.get("user_id")
    user_id = principal.user_id or (claimed if isinstance(claimed, str) else None)
    wire = pb.Cron(
        tenant_id=tenant,
        assistant_id=body.assistant_id,
        thread_id=thread_id or "",
        schedule=body.schedule.strip(),
        timezone=body.timezone or "",
        payload_json=json.dumps(payload).encode(),
        metadata_json=json.dumps(body.metadata).encode(),
        enabled=body.enabled,
        end_time=_utc(body.end_time),
        user_id=user_id or "",
        on_run_completed=body.on_run_completed or "",
    )
    return _langgraph(await crons.create(wire))


def _utc(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


@router.post("/runs/crons", responses=error_responses(404, 422, 503))
async def create_cron(
    body: CronCreate, principal: Caller, settings: Settings, starter: Starter, memory: MemoryClient, crons: Crons
) -> Any:
    """A cron whose every tick starts a run on a new thread."""
    return await _create(body, None, principal, settings, starter, memory, crons)


@router.post("/threads/{thread_id}/runs/crons", responses=error_responses(404, 422, 503))
async def create_thread_cron(
    thread_id: ThreadId,
    body: CronCreate,
    principal: Caller,
    settings: Settings,
    starter: Starter,
    memory: MemoryClient,
    crons: Crons,
) -> Any:
    """A cron whose every tick starts a run on the thread (``multitask_strategy`` decides while it is busy)."""
    return await _create(body, thread_id, principal, settings, starter, memory, crons)


@router.post("/runs/crons/search", responses=error_responses(422, 503))
async def search_crons(body: CronSearch, principal: Caller, crons: Crons) -> list[dict[str, Any]]:
    query = CronQuery(
        assistant_id=body.assistant_id or "",
        thread_id=body.thread_id or "",
        enabled=body.enabled,
        metadata=body.metadata or {},
        sort_by=body.sort_by or "",
        sort_order=body.sort_order or "",
    )
    found = await crons.search(principal.tenant_id, query, limit=body.limit, offset=body.offset)
    return [_langgraph(c) for c in found]


@router.post("/runs/crons/count", response_model=int, responses=error_responses(422, 503))
async def count_crons(body: CronCount, principal: Caller, crons: Crons) -> int:
    query = CronQuery(
        assistant_id=body.assistant_id or "", thread_id=body.thread_id or "", metadata=body.metadata or {}
    )
    return await crons.count(principal.tenant_id, query)


@router.patch("/runs/crons/{cron_id}", responses=error_responses(404, 422, 503))
async def update_cron(
    cron_id: CronId, body: CronPatch, principal: Caller, settings: Settings, starter: Starter, crons: Crons
) -> Any:
    tenant = principal.tenant_id
    current = await crons.get(tenant, cron_id)
    given = body.model_dump(include=set(_RUN_FIELDS), exclude_unset=True)
    payload = None
    if given:
        changed = {**current.payload, **given}
        payload = await _checked_payload(
            starter, principal, settings, changed, current.assistant_id, current.thread_id or None
        )
    changes = CronChanges(
        schedule=body.schedule.strip() if body.schedule else None,
        timezone=body.timezone,
        payload=payload,
        metadata=body.metadata,
        enabled=body.enabled,
        set_end_time="end_time" in body.model_fields_set,
        end_time=body.end_time,
        on_run_completed=body.on_run_completed,
    )
    return _langgraph(await crons.update(tenant, cron_id, changes))


@router.delete("/runs/crons/{cron_id}", status_code=204, responses=error_responses(404, 503))
async def delete_cron(cron_id: CronId, principal: Caller, crons: Crons) -> Response:
    await crons.delete(principal.tenant_id, cron_id)
    return Response(status_code=204)


async def start_tick(starter: RunStarter, settings: GatewaySettings, cron: Cron, tick: str) -> None:
    """Start the run of one claimed tick, for the cron's tenant, with ids derived from the cron and the tick."""
    metadata = {**cron.metadata, "cron_id": cron.cron_id}
    ids = tick_ids(cron.cron_id, tick)
    new = _new_run(cron.payload, cron.assistant_id, cron.thread_id or None, metadata, settings, ids)
    await starter.start(cron_principal(cron), new, "cron")


def ticker(services: Services) -> CronTicker:
    """This replica's cron ticker (the app's lifespan starts and stops it)."""

    async def start(cron: Cron, tick: str) -> None:
        await start_tick(services.starter, services.settings, cron, tick)

    return CronTicker(services.crons, start, services.settings.cron_interval_s)
