"""Devices going offline: a device not heard from for `device_offline_after_s` is marked
offline and raises one alarm per outage (safe to run twice for a tick: the alarm is
claimed per device with a conditional update)."""

from __future__ import annotations

from datetime import timedelta

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.runtime import Runtime
from anxin.scheduler import JobContext, registry
from domain.alarms.service import raise_alarm
from models import AlarmKind, Device, DeviceStatus
from notifications.views import wechat_time

MARK_DEVICES_OFFLINE = "mark_devices_offline"


async def mark_devices_offline(ctx: JobContext) -> dict[str, int]:
    now = utcnow()
    cutoff = now - timedelta(seconds=ctx.runtime.settings.device_offline_after_s)
    # Seen again since its last alarm: the next outage deserves a new alarm.
    rearmed = await Device.filter(
        offline_alarm_at__not_isnull=True, last_seen_at__gt=F("offline_alarm_at")
    ).update(offline_alarm_at=None)
    went_offline = await Device.filter(online=True, last_seen_at__lt=cutoff).update(online=False)
    alarmed = 0
    stale = await Device.filter(
        status=DeviceStatus.ACTIVE, offline_alarm_at=None, last_seen_at__lt=cutoff
    ).prefetch_related("community")
    for device in stale:
        async with in_transaction():
            # The conditional update is the once-only claim, even if two workers race.
            won = await Device.filter(id=device.id, offline_alarm_at=None).update(
                offline_alarm_at=now, online=False
            )
            if not won:
                continue
            seen = device.last_seen_at
            assert seen is not None  # filtered on last_seen_at__lt above
            await raise_alarm(
                ctx.runtime,
                device.community_id,
                AlarmKind.DEVICE_OFFLINE,
                device_id=device.id,
                details={"since": wechat_time(seen, device.community.timezone)},
                event_key=f"device_offline:{device.id}:{int(seen.timestamp())}",
            )
            alarmed += 1
    return {"rearmed": rearmed, "offline": went_offline, "alarmed": alarmed}


def install(runtime: Runtime) -> None:
    """The devices capability's scheduled job (it runs where the scheduler runs)."""
    if MARK_DEVICES_OFFLINE not in registry.jobs:
        registry.add_job(MARK_DEVICES_OFFLINE, mark_devices_offline, seconds=30)
