"""The visitor register for staff: who came to which household, when and how.

Built from the access log (granted entries of visitors: pass, delivery, intercom, code,
visitor plate), joined with the pass for the visitor's name. Phones are masked. CSV is
UTF-8 with a BOM (Excel opens Chinese correctly), times in the community's time zone,
and cells that would start a formula are quoted (CSV injection).
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from tortoise.expressions import Q

from anxin.errors import invalid
from anxin.timefmt import local_iso, zone
from auth.permissions import Action, Principal, authorize
from domain.passes.service import mask_phone
from models import (
    AccessEvent,
    AccessMethod,
    AccessResult,
    Building,
    Community,
    Device,
    Room,
    Unit,
    VisitorPass,
)

VisitMethod = Literal["pass", "delivery", "intercom", "code", "plate"]
METHOD_ZH = {
    "pass": "访客通行证",
    "delivery": "外卖快递",
    "intercom": "对讲",
    "code": "住户密码",
    "plate": "访客车辆",
}
METHOD_EN = {
    "pass": "visitor pass",
    "delivery": "delivery",
    "intercom": "intercom",
    "code": "household code",
    "plate": "visitor vehicle",
}
MAX_ROWS = 10_000

_PASS_REASONS = ("visitor_pass", "delivery_pass")
_FILTERS: dict[str, Q] = {
    "pass": Q(method=AccessMethod.QR, reason="visitor_pass"),
    "delivery": Q(reason="delivery_pass"),
    "intercom": Q(method=AccessMethod.INTERCOM, reason="intercom_answered"),
    "code": Q(method=AccessMethod.CODE, reason="household_code"),
    "plate": Q(method=AccessMethod.PLATE, reason__in=_PASS_REASONS),
}


def visit_method(e: AccessEvent) -> str:
    if e.reason == "delivery_pass":
        return "delivery"
    if e.method == AccessMethod.PLATE:
        return "plate"
    return {
        AccessMethod.QR: "pass",
        AccessMethod.INTERCOM: "intercom",
        AccessMethod.CODE: "code",
    }.get(e.method, e.method.value)


def _day_start(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone(tz))


async def visits(
    principal: Principal,
    community_id: int,
    *,
    room_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
    method: VisitMethod | None = None,
    limit: int = 500,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Newest record first (by id: stable while entries arrive); `before` an event id."""
    authorize(principal, Action.VISITOR_REGISTER_READ, community_id)
    community = await Community.get(id=community_id)
    tz = community.timezone
    if since and until and until < since:
        raise invalid("date_range_invalid", "结束日期早于开始日期", "until is before since")
    query = AccessEvent.filter(community_id=community_id, result=AccessResult.GRANTED)
    query = query.filter(_FILTERS[method] if method else Q(*_FILTERS.values(), join_type="OR"))
    if room_id is not None:
        query = query.filter(room_id=room_id)
    if since is not None:
        query = query.filter(occurred_at__gte=_day_start(since, tz))
    if until is not None:
        query = query.filter(occurred_at__lt=_day_start(until + timedelta(days=1), tz))
    if before is not None:
        query = query.filter(id__lt=before)
    events = await query.order_by("-id").limit(min(limit, MAX_ROWS))
    passes = {
        p.id: p for p in await VisitorPass.filter(id__in={e.pass_id for e in events if e.pass_id})
    }
    rooms = {r.id: r for r in await Room.filter(id__in={e.room_id for e in events if e.room_id})}
    buildings = {
        b.id: b.name for b in await Building.filter(id__in={r.building_id for r in rooms.values()})
    }
    units = {u.id: u.name for u in await Unit.filter(id__in={r.unit_id for r in rooms.values()})}
    devices = {
        d.id: d.name
        for d in await Device.filter(id__in={e.device_id for e in events if e.device_id})
    }
    out = []
    for e in events:
        p = passes.get(e.pass_id) if e.pass_id else None
        r = rooms.get(e.room_id) if e.room_id else None
        vm = visit_method(e)
        out.append(
            {
                "event_id": e.id,
                "time": local_iso(e.occurred_at, tz),
                "method": vm,
                "method_zh": METHOD_ZH.get(vm, vm),
                "method_en": METHOD_EN.get(vm, vm),
                "room_id": e.room_id,
                "room": f"{buildings.get(r.building_id, '')}{units.get(r.unit_id, '')}{r.number}"
                if r
                else "",
                "visitor_name": p.visitor_name if p else "",
                "visitor_phone": mask_phone(p.visitor_phone) if p and p.visitor_phone else "",
                "plate": e.plate or (p.plate if p else ""),
                "door": devices.get(e.device_id, "") if e.device_id else "",
                "pass_id": e.pass_id,
                "answered_by_id": e.requested_by_id,
            }
        )
    return out


CSV_COLUMNS = [
    ("time", "时间 Time"),
    ("method_zh", "方式 Method"),
    ("room", "房屋 Household"),
    ("visitor_name", "访客 Visitor"),
    ("visitor_phone", "电话 Phone"),
    ("plate", "车牌 Plate"),
    ("door", "门 Door"),
    ("pass_id", "通行证 Pass"),
]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([title for _, title in CSV_COLUMNS])
    for row in rows:
        writer.writerow([_cell(row.get(key)) for key, _ in CSV_COLUMNS])
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")
