"""Scheduled jobs: once per tick across workers, and the built-in jobs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from anxin.clock import clock, utcnow
from anxin.scheduler import JobContext, JobRegistry, Scheduler, run_job_once
from domain.devices.presence import MARK_DEVICES_OFFLINE
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Alarm,
    AlarmKind,
    Device,
    DeviceKind,
    Notification,
    OutboxEvent,
    StaffRoleName,
)
from notifications.dispatcher import DISPATCHER, Dispatcher
from notifications.jobs import DAILY_STAFF_SUMMARY, _local_day_bounds
from tests.helpers import make_staff, make_world
from tests.stack import Stack


@pytest.fixture
async def quiet(stack: Stack) -> AsyncIterator[Stack]:
    """Pause the stack's dispatcher so this test's own drain() does the delivery."""
    running = stack.runtime.get(DISPATCHER)
    await running.stop()
    try:
        yield stack
    finally:
        await running.start()


def counting_registry(seconds: int = 30) -> tuple[JobRegistry, list[JobContext]]:
    runs: list[JobContext] = []
    reg = JobRegistry()

    @reg.job("count", seconds=seconds)
    async def count(ctx: JobContext) -> None:
        runs.append(ctx)

    return reg, runs


async def test_a_job_runs_once_per_tick_with_three_workers(stack: Stack) -> None:
    reg, runs = counting_registry()
    # Three processes' schedulers, sharing only the claim store (Redis on postgres).
    workers = [Scheduler(stack.runtime, reg, enabled=False) for _ in range(3)]
    ran = await asyncio.gather(*(w.fire("count") for w in workers))
    assert sorted(ran) == [False, False, True] and len(runs) == 1
    ran = await asyncio.gather(*(w.fire("count") for w in workers))
    assert ran == [False, False, False] and len(runs) == 1  # same tick: nobody
    clock.advance(30)
    ran = await asyncio.gather(*(w.fire("count") for w in workers))
    assert sum(ran) == 1 and len(runs) == 2
    assert runs[1].tick - runs[0].tick == timedelta(seconds=30)


async def test_apscheduler_fires_and_claims_with_three_workers(stack: Stack) -> None:
    reg = JobRegistry()
    ticks: list[object] = []
    two = asyncio.Event()

    async def tick(ctx: JobContext) -> None:
        ticks.append(ctx.tick)
        if len(ticks) >= 2:
            two.set()

    reg.add_job(f"tick-{secrets.token_hex(3)}", tick, seconds=1)
    workers = [Scheduler(stack.runtime, reg) for _ in range(3)]
    for w in workers:
        await w.start()
    try:
        await asyncio.wait_for(two.wait(), 5)
        await asyncio.sleep(0.3)  # let late firings of the same tick lose their claim
    finally:
        for w in workers:
            await w.stop()
    assert len(ticks) == len(set(ticks)) >= 2


def test_registry_rules() -> None:
    reg = JobRegistry()

    async def job(ctx: JobContext) -> None:
        return None

    reg.add_job("a", job, seconds=5)
    with pytest.raises(ValueError, match="already"):
        reg.add_job("a", job, seconds=5)
    with pytest.raises(ValueError, match="exactly one"):
        reg.add_job("b", job)
    with pytest.raises(ValueError, match="exactly one"):
        reg.add_job("b", job, seconds=5, cron={"minute": 1})
    reg.add_job("c", job, cron={"hour": 3, "minute": 0}, timezone="Asia/Shanghai")
    assert reg.get("c").period_s == 60
    with pytest.raises(KeyError, match="no job"):
        reg.get("nope")


async def test_mark_devices_offline_alarms_staff_once(quiet: Stack) -> None:
    stack = quiet
    world = await make_world(units=1, rooms_per_unit=1)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    await make_staff(world.community, StaffRoleName.APPROVER)  # not told
    after = stack.settings.device_offline_after_s
    device = await Device.create(
        device_uid=f"dev-{secrets.token_hex(4)}",
        community=world.community,
        kind=DeviceKind.FACE_GATE,
        name="南门闸机",
        place="南门",
        online=True,
        last_seen_at=utcnow(),
    )
    result = await run_job_once(MARK_DEVICES_OFFLINE, stack.runtime)
    await device.refresh_from_db()
    assert device.online and device.offline_alarm_at is None

    clock.advance(after + 5)
    await run_job_once(MARK_DEVICES_OFFLINE, stack.runtime)
    await run_job_once(MARK_DEVICES_OFFLINE, stack.runtime)  # a second run: no new alarm
    await device.refresh_from_db()
    assert not device.online and device.offline_alarm_at is not None
    alarms = OutboxEvent.filter(event_type="device_offline", community_id=world.community.id)
    assert await alarms.count() == 1

    # Back online, then gone again: a new outage, a new alarm.
    await Device.filter(id=device.id).update(online=True, last_seen_at=utcnow())
    result = await run_job_once(MARK_DEVICES_OFFLINE, stack.runtime)
    assert result["rearmed"] >= 1
    clock.advance(after + 5)
    await run_job_once(MARK_DEVICES_OFFLINE, stack.runtime)
    assert await alarms.count() == 2
    # Each outage is also an alarm in the staff console's alarm list.
    kinds = await Alarm.filter(device_id=device.id).values_list("kind", flat=True)
    assert list(kinds) == [AlarmKind.DEVICE_OFFLINE, AlarmKind.DEVICE_OFFLINE]

    await Dispatcher(stack.runtime, run_loops=False).drain()
    notes = await Notification.filter(event_type="device_offline", community_id=world.community.id)
    assert {(n.recipient_type, n.recipient_id) for n in notes} == {("staff", guard.id)}
    assert notes[0].mandatory and "南门闸机" in notes[0].body_zh


async def test_daily_summary_uses_the_community_day(quiet: Stack) -> None:
    stack = quiet
    world = await make_world(units=1, rooms_per_unit=1)
    day, start, end = _local_day_bounds(utcnow(), "Asia/Tokyo")
    world.community.timezone = "Asia/Tokyo"
    world.community.created_at = start - timedelta(days=3)  # it existed yesterday
    await world.community.save(update_fields=["timezone", "created_at"])
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    cid = world.community.id
    # A community created today had no yesterday: no summary of it.
    newcomer = (await make_world(units=1, rooms_per_unit=1)).community

    async def event(result: AccessResult, at: object) -> None:
        await AccessEvent.create(
            community_id=cid, method=AccessMethod.FACE, result=result, reason="t", created_at=at
        )

    for _ in range(3):
        await event(AccessResult.GRANTED, start + timedelta(hours=1))
    await event(AccessResult.DENIED, end - timedelta(minutes=1))
    await event(AccessResult.GRANTED, end + timedelta(minutes=1))  # today: not counted
    await event(AccessResult.GRANTED, start - timedelta(minutes=1))  # the day before
    await run_job_once(DAILY_STAFF_SUMMARY, stack.runtime)
    await run_job_once(DAILY_STAFF_SUMMARY, stack.runtime)  # rerun: no second summary
    [row] = await OutboxEvent.filter(event_type="daily_summary", community_id=cid)
    assert not await OutboxEvent.filter(event_type="daily_summary", community_id=newcomer.id)
    assert row.payload == {"date": day, "entries": 3, "denials": 1, "alarms": 0}
    await Dispatcher(stack.runtime, run_loops=False).drain()
    note = await Notification.get(outbox_id=row.id)
    assert note.recipient_id == admin.id and f"{day}：通行3次，拒绝1次" in note.body_zh
