"""What a community's home page and the operator overview show: counts and chart series.

Each section is computed only when the viewer holds the right that reading its rows
would need (entries: the access log; alarms: alarm handling; ...), so the home page
tells nobody more than the pages behind it would.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.functions import Count

from anxin.clock import utcnow
from anxin.errors import forbidden, not_found
from anxin.timefmt import zone
from auth.permissions import POLICY, Action, Principal, authorize
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Alarm,
    AlarmKind,
    AlarmState,
    Community,
    Device,
    DeviceStatus,
    EnrollmentState,
    FaceEnrollment,
    Membership,
    MembershipState,
)

FILING_THRESHOLD = 100_000  # people with face data: file with the provincial CAC


def _may(principal: Principal, action: Action, cid: int) -> bool:
    if principal.is_operator:
        return True
    return bool(principal.roles.get(cid, set()) & POLICY[action])


def local_day_start(tz: str, now: datetime | None = None) -> datetime:
    now = (now or utcnow()).astimezone(zone(tz))
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _utc(value: datetime) -> datetime:
    """Filters compare in UTC: SQLite compares the stored text, so an instant written with
    another offset would sort wrongly."""
    return value.astimezone(UTC)


@dataclass
class Summary:
    community_id: int
    entries_today: int | None = None
    refused_today: int | None = None
    open_alarms: int | None = None
    devices_online: int | None = None
    devices_offline: int | None = None
    pending_memberships: int | None = None
    pending_faces: int | None = None
    faces_held: int | None = None
    filing_threshold: int = FILING_THRESHOLD
    extra: dict[str, Any] = field(default_factory=dict)


async def summary(principal: Principal, community: Community) -> Summary:
    cid = community.id
    if not principal.is_operator and cid not in principal.roles:
        raise not_found("community")  # any role here shows the page; each figure needs its right
    out = Summary(cid)
    start = local_day_start(community.timezone)
    if _may(principal, Action.ACCESS_LOG_READ, cid):
        today = AccessEvent.filter(community_id=cid, created_at__gte=_utc(start))
        out.entries_today = await today.filter(result=AccessResult.GRANTED).count()
        out.refused_today = await today.filter(result=AccessResult.DENIED).count()
    if _may(principal, Action.ALARM_HANDLE, cid):
        out.open_alarms = await Alarm.filter(community_id=cid, state=AlarmState.OPEN).count()
    if _may(principal, Action.DEVICE_READ, cid):
        active = Device.filter(community_id=cid, status=DeviceStatus.ACTIVE)
        out.devices_online = await active.filter(online=True).count()
        out.devices_offline = await active.filter(online=False).count()
    if _may(principal, Action.MEMBERSHIP_READ, cid):
        out.pending_memberships = await Membership.filter(
            community_id=cid, state=MembershipState.PENDING
        ).count()
    if _may(principal, Action.FACE_REVIEW, cid):
        faces = FaceEnrollment.filter(community_id=cid)
        out.pending_faces = await faces.filter(state=EnrollmentState.PENDING).count()
        held = faces.filter(state__in=[EnrollmentState.PENDING, EnrollmentState.APPROVED])
        out.faces_held = len(set(await held.values_list("resident_id", flat=True)))
    return out


async def entries_by_hour(principal: Principal, community: Community) -> dict[str, Any]:
    """Granted entries in each of the last 24 hours (local hour labels, oldest first),
    one series per method: at 1 a.m. a guard still sees yesterday evening's peak."""
    authorize(principal, Action.ACCESS_LOG_READ, community.id)
    tz = zone(community.timezone)
    now = utcnow().astimezone(tz)
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    rows = await AccessEvent.filter(
        community_id=community.id, created_at__gte=_utc(first), result=AccessResult.GRANTED
    ).values_list("created_at", "method")
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    for created_at, method in rows:
        slot = int((created_at.astimezone(tz) - first).total_seconds() // 3600)
        if 0 <= slot < 24:
            counts[str(method)][slot] += 1
    methods = [m.value for m in AccessMethod if m.value in counts]
    hours = [(first + timedelta(hours=i)).hour for i in range(24)]
    return {"hours": hours, "series": {m: counts[m] for m in methods}}


async def refusals_by_reason(
    principal: Principal, community: Community, days: int = 7
) -> list[tuple[str, int]]:
    authorize(principal, Action.ACCESS_LOG_READ, community.id)
    since = local_day_start(community.timezone) - timedelta(days=days - 1)
    reasons = await AccessEvent.filter(
        community_id=community.id, created_at__gte=_utc(since), result=AccessResult.DENIED
    ).values_list("reason", flat=True)
    return Counter(str(r) for r in reasons).most_common(12)


async def entries_by_day(
    principal: Principal, community: Community, days: int = 7
) -> list[tuple[str, int, int]]:
    """(local date, granted, refused) for the last `days` days."""
    authorize(principal, Action.ACCESS_LOG_READ, community.id)
    tz = zone(community.timezone)
    first = local_day_start(community.timezone) - timedelta(days=days - 1)
    rows = await AccessEvent.filter(
        community_id=community.id, created_at__gte=_utc(first)
    ).values_list("created_at", "result")
    granted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for created_at, result in rows:
        day = created_at.astimezone(tz).date().isoformat()
        if result == AccessResult.GRANTED:
            granted[day] += 1
        elif result == AccessResult.DENIED:
            refused[day] += 1
    out = []
    for i in range(days):
        day = (first + timedelta(days=i)).date().isoformat()
        out.append((day, granted[day], refused[day]))
    return out


async def device_health(
    principal: Principal, community: Community, days: int = 7
) -> list[dict[str, Any]]:
    """Per active device: online now, last heartbeat, offline alarms in `days` days."""
    authorize(principal, Action.DEVICE_READ, community.id)
    since = utcnow() - timedelta(days=days)
    devices = await Device.filter(community_id=community.id, status=DeviceStatus.ACTIVE).order_by(
        "id"
    )
    device_ids: list[Any] = await Alarm.filter(
        community_id=community.id, kind=AlarmKind.DEVICE_OFFLINE, created_at__gte=since
    ).values_list("device_id", flat=True)
    offline = Counter(int(i) for i in device_ids if i is not None)
    return [
        {
            "id": d.id,
            "name": d.name,
            "online": d.online,
            "last_seen_at": d.last_seen_at,
            "offline_events": offline.get(d.id, 0),
        }
        for d in devices
    ]


async def _counts(query: Any, key: str = "community_id") -> dict[int, int]:
    rows = await query.annotate(n=Count("id")).group_by(key).values(key, "n")
    return {r[key]: r["n"] for r in rows}


async def operator_overview(principal: Principal) -> list[tuple[Community, Summary]]:
    """Every community's summary for a city operator, in a fixed number of grouped
    queries (one city in our source material runs 100 communities on one page)."""
    if not principal.is_operator:
        raise forbidden("operators only", "仅限运营人员")
    communities = await Community.all().order_by("id").prefetch_related("city")
    # "Today" is each community's own day; most cities share one zone, so group by zone.
    entries: dict[int, int] = {}
    refused: dict[int, int] = {}
    for tz in {c.timezone for c in communities}:
        ids = [c.id for c in communities if c.timezone == tz]
        today = AccessEvent.filter(community_id__in=ids, created_at__gte=_utc(local_day_start(tz)))
        entries.update(await _counts(today.filter(result=AccessResult.GRANTED)))
        refused.update(await _counts(today.filter(result=AccessResult.DENIED)))
    alarms = await _counts(Alarm.filter(state=AlarmState.OPEN))
    active = Device.filter(status=DeviceStatus.ACTIVE)
    online = await _counts(active.filter(online=True))
    offline = await _counts(active.filter(online=False))
    pending = await _counts(Membership.filter(state=MembershipState.PENDING))
    pending_faces = await _counts(FaceEnrollment.filter(state=EnrollmentState.PENDING))
    held_rows = await FaceEnrollment.filter(
        state__in=[EnrollmentState.PENDING, EnrollmentState.APPROVED]
    ).values_list("community_id", "resident_id")
    held: dict[int, set[int]] = defaultdict(set)
    for cid, rid in held_rows:
        held[cid].add(rid)
    return [
        (
            c,
            Summary(
                c.id,
                entries_today=entries.get(c.id, 0),
                refused_today=refused.get(c.id, 0),
                open_alarms=alarms.get(c.id, 0),
                devices_online=online.get(c.id, 0),
                devices_offline=offline.get(c.id, 0),
                pending_memberships=pending.get(c.id, 0),
                pending_faces=pending_faces.get(c.id, 0),
                faces_held=len(held.get(c.id, ())),
            ),
        )
        for c in communities
    ]
