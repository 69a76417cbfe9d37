"""Built-in scheduled job of notifications: the staff's daily summary (safe to run twice
for a tick: a dedupe key per community and day). Devices going offline is the devices
capability's job (domain/devices/presence.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from anxin.clock import utcnow
from anxin.scheduler import JobContext, JobRegistry
from anxin.timefmt import zone
from models import (
    AccessEvent,
    AccessResult,
    Community,
    OutboxEvent,
    StaffRoleName,
)
from notifications.catalog import ALARM_TYPES, EventType
from notifications.outbox import emit

log = logging.getLogger(__name__)

DAILY_STAFF_SUMMARY = "daily_staff_summary"
ALARM_ROLES = (StaffRoleName.ADMIN, StaffRoleName.GUARD)


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
    figures, so every time zone gets its own day. A community created since then had no
    yesterday: it gets its first summary the day after."""
    sent = 0
    for c in await Community.all().values("id", "timezone", "created_at"):
        day, start, end = _local_day_bounds(utcnow(), c["timezone"])
        if c["created_at"] >= end:
            continue
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
        (DAILY_STAFF_SUMMARY, daily_staff_summary, {"cron": {"minute": 5}}),
    ]
    for name, func, when in jobs:
        if name not in registry.jobs:
            registry.add_job(name, func, **when)
