"""The CronService against a real memory service, on SQLite and on PostgreSQL: crons are stored per tenant,
a bad schedule is refused, a due tick is claimed once however many callers claim at once, crons survive
a restart, and erasing the tenant erases them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from threadline.memory.v1 import memory_pb2 as pb
from threadline.memory.v1.memory_pb2_grpc import CronServiceStub, ThreadServiceStub
from threadline_memory.server import serve

from tests.memory.conftest import memory_settings


@pytest.fixture
async def channel(memory_target: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(memory_target) as channel:
        yield channel


def _cron(tenant: str = "acme", schedule: str = "* * * * *", **fields: object) -> pb.CreateCronRequest:
    payload = json.dumps({"input": {"messages": [{"role": "user", "content": "hi"}]}}).encode()
    return pb.CreateCronRequest(
        cron=pb.Cron(
            tenant_id=tenant, assistant_id="agent", schedule=schedule, payload_json=payload, enabled=True, **fields
        )
    )


def _in(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


async def test_crons_are_stored_searched_updated_and_deleted_per_tenant(channel: grpc.aio.Channel) -> None:
    crons = CronServiceStub(channel)
    made = await crons.CreateCron(_cron(metadata_json=b'{"team": "a"}', thread_id="t-1"))
    assert made.cron_id and made.thread_id == "t-1" and made.enabled
    assert dt.datetime.fromisoformat(made.next_run_at) > dt.datetime.now(dt.UTC)
    await crons.CreateCron(_cron(schedule="0 9 * * 1", timezone="Europe/Paris"))
    await crons.CreateCron(_cron(tenant="globex"))

    found = await crons.SearchCrons(pb.SearchCronsRequest(tenant_id="acme", metadata_json=b'{"team": "a"}'))
    assert [c.cron_id for c in found.crons] == [made.cron_id]
    assert (await crons.CountCrons(pb.SearchCronsRequest(tenant_id="acme"))).count == 2
    assert (await crons.CountCrons(pb.SearchCronsRequest(tenant_id="acme", thread_id="t-1"))).count == 1

    changed = await crons.UpdateCron(pb.UpdateCronRequest(tenant_id="acme", cron_id=made.cron_id, enabled=False))
    assert not changed.enabled and changed.next_run_at == ""
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await crons.GetCron(pb.GetCronRequest(tenant_id="globex", cron_id=made.cron_id))
    assert other.value.code() == grpc.StatusCode.NOT_FOUND
    await crons.DeleteCron(pb.GetCronRequest(tenant_id="acme", cron_id=made.cron_id))
    assert (await crons.CountCrons(pb.SearchCronsRequest(tenant_id="acme"))).count == 1


@pytest.mark.parametrize(
    ("schedule", "timezone"), [("every minute", ""), ("61 * * * *", ""), ("* * * * *", "Mars/Olympus")]
)
async def test_a_schedule_that_does_not_parse_is_refused(
    channel: grpc.aio.Channel, schedule: str, timezone: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await CronServiceStub(channel).CreateCron(_cron(schedule=schedule, timezone=timezone))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_due_tick_is_claimed_once_by_callers_claiming_together(channel: grpc.aio.Channel) -> None:
    crons = CronServiceStub(channel)
    made = [await crons.CreateCron(_cron()) for _ in range(5)]
    later = _in(1.5)  # every cron is due then, once
    claims = await asyncio.gather(*(crons.ClaimDueCrons(pb.ClaimDueCronsRequest(now=later)) for _ in range(8)))
    ticks = [t for c in claims for t in c.ticks]
    assert sorted(t.cron.cron_id for t in ticks) == sorted(m.cron_id for m in made)
    for t in ticks:
        assert dt.datetime.fromisoformat(t.tick) <= dt.datetime.fromisoformat(later)
        assert dt.datetime.fromisoformat(t.cron.next_run_at) > dt.datetime.fromisoformat(later)
    again = await crons.ClaimDueCrons(pb.ClaimDueCronsRequest(now=later))
    assert list(again.ticks) == []


async def test_a_cron_past_its_end_time_is_disabled_when_claimed(channel: grpc.aio.Channel) -> None:
    crons = CronServiceStub(channel)
    # Times from the next minute's tick, not from now: its following tick must fall after end_time.
    tick = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    made = await crons.CreateCron(_cron(end_time=(tick + dt.timedelta(seconds=30)).isoformat()))
    claimed = await crons.ClaimDueCrons(pb.ClaimDueCronsRequest(now=(tick + dt.timedelta(seconds=1)).isoformat()))
    assert [t.cron.cron_id for t in claimed.ticks] == [made.cron_id]
    assert not claimed.ticks[0].cron.enabled
    assert list((await crons.ClaimDueCrons(pb.ClaimDueCronsRequest(now=_in(10)))).ticks) == []


async def test_erasing_a_tenant_erases_its_crons(channel: grpc.aio.Channel) -> None:
    crons = CronServiceStub(channel)
    await crons.CreateCron(_cron(tenant="initech"))
    erased = await ThreadServiceStub(channel).Erase(pb.EraseRequest(tenant_id="initech"))
    assert erased.crons == 1
    assert (await crons.CountCrons(pb.SearchCronsRequest(tenant_id="initech"))).count == 0


async def test_crons_survive_a_restart(database: str, tmp_path: Path) -> None:
    settings = memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")
    async with serve(settings) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        made = await CronServiceStub(channel).CreateCron(_cron())
    async with serve(settings) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        found = await CronServiceStub(channel).GetCron(pb.GetCronRequest(tenant_id="acme", cron_id=made.cron_id))
    assert found.schedule == "* * * * *" and found.next_run_at == made.next_run_at
