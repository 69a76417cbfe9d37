"""Built-in scheduled jobs: devices going offline, and the staff's daily summary.

Both are safe to run twice for the same tick (the claim makes that rare): the offline
alarm is claimed per device with a conditional update, the summary has a dedupe key per
community and day.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.scheduler import JobContext, JobRegistry
from anxin.timefmt import zone
from domain.alarms.service import raise_alarm
from models import (
    AccessEvent,
    AccessResult,
    AlarmKind,
    Community,
    Device,
    DeviceStatus,
    OutboxEvent,
    StaffRoleName,
)
from notifications.catalog import ALARM_TYPES, EventType
from notifications.outbox import emit
from notifications.views import wechat_time

log = logging.getLogger(__name__)

MARK_DEVICES_OFFLINE = "mark_devices_offline"
DAILY_STAFF_SUMMARY = "daily_staff_summary"
ALARM_ROLES = (StaffRoleName.ADMIN, StaffRoleName.GUARD)


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


def _local_day_bounds(now: datetime, tz_name: str) -> tuple[str, datetime, datetime]:
    """Yesterday in the community's zone, as (date, start UTC, end UTC)."""
    tz = zone(tz_name)
    today = now.astimezone(tz).date()
    day = today - timedelta(days=1)
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    end = datetime.combine(today, time(0), tz).astimezone(UTC)
    return day.isoformat(), start, end


async def summary_counts(community_id: int, start: datetime, end: datetime) -> dict[str, int]:
    events = AccessEvent.filter(
        community_id=community_id, created_at__gte=start, created_at__lt=end
    )
    return {
        "entries": await events.filter(result=AccessResult.GRANTED).count(),
        "denials": await events.filter(result=AccessResult.DENIED).count(),
        "alarms": await OutboxEvent.filter(
            community_id=community_id,
            event_type__in=sorted(ALARM_TYPES),
            occurred_at__gte=start,
            occurred_at__lt=end,
        ).count(),
    }


async def daily_staff_summary(ctx: JobContext) -> int:
    """Runs hourly; the first run after local midnight sends each community yesterday's
    figures, so every time zone gets its own day."""
    sent = 0
    for c in await Community.all().values("id", "timezone"):
        day, start, end = _local_day_bounds(utcnow(), c["timezone"])
        key = f"daily_summary:{c['id']}:{day}"
        if await OutboxEvent.filter(dedupe_key=key).exists():
            continue
        counts = await summary_counts(c["id"], start, end)
        await emit(
            EventType.DAILY_SUMMARY,
            community_id=c["id"],
            staff_roles=ALARM_ROLES,
            payload={"date": day, **counts},
            occurred_at=end,
            dedupe_key=key,
        )
        sent += 1
    return sent


def register_builtin_jobs(registry: JobRegistry) -> None:
    jobs: list[tuple[str, Any, dict[str, Any]]] = [
        (MARK_DEVICES_OFFLINE, mark_devices_offline, {"seconds": 30}),
        (DAILY_STAFF_SUMMARY, daily_staff_summary, {"cron": {"minute": 5}}),
    ]
    for name, func, when in jobs:
        if name not in registry.jobs:
            registry.add_job(name, func, **when)
