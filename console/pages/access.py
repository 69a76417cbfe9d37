"""The access log: filters, live rows (server-sent events), snapshots, CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response, StreamingResponse

from anxin.timefmt import zone
from auth.permissions import Action, authorize
from console import i18n, labels, nav
from console.web import CommunityCtx, ConsoleRoute, Ctx, env, render
from domain.access import service as access
from domain.video import captures as video_captures
from domain.visitors.register import _cell as csv_cell  # no formula injection
from models import AccessEvent, AccessMethod, AccessResult, Device, Membership, Resident, Room

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "access", "nav.access", "/console/c/{cid}/access", (Action.ACCESS_LOG_READ,), order=30
    )
)

i18n.add(
    {
        "nav.access": ("通行记录", "Access log"),
        "access.title": ("通行记录", "Access log"),
        "access.live": ("实时更新中", "Live"),
        "access.offline": ("实时连接已断开，正在重连…", "Live feed lost, reconnecting…"),
        "access.door": ("门", "Door"),
        "access.method": ("方式", "Method"),
        "access.result": ("结果", "Result"),
        "access.person": ("人员", "Person"),
        "access.resident": ("住户（姓名或编号）", "Resident (name or id)"),
        "access.since": ("开始时间", "From"),
        "access.until": ("结束时间", "Until"),
        "access.snapshot": ("抓拍", "Snapshot"),
        "access.snapshot_alt": ("闸机抓拍照片", "Gate snapshot"),
        "access.any": ("全部", "All"),
        "access.apply": ("筛选", "Apply"),
        "access.room": ("房间", "Room"),
    }
)

PAGE = 50
EXPORT_MAX = 50_000


@dataclass
class Filters:
    door: int | None
    method: AccessMethod | None
    result: AccessResult | None
    resident: str
    since: str
    until: str

    def query(self, **extra: Any) -> str:
        values = {
            "door": self.door or "",
            "method": self.method.value if self.method else "",
            "result": self.result.value if self.result else "",
            "resident": self.resident,
            "since": self.since,
            "until": self.until,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < int(value) < 2**31 else None


def filters(
    door: Annotated[str, Query(max_length=12)] = "",
    method: Annotated[str, Query(max_length=16)] = "",
    result: Annotated[str, Query(max_length=16)] = "",
    resident: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=20)] = "",
    until: Annotated[str, Query(max_length=20)] = "",
) -> Filters:
    return Filters(
        _int_or_none(door),
        AccessMethod(method) if method in AccessMethod._value2member_map_ else None,
        AccessResult(result) if result in AccessResult._value2member_map_ else None,
        resident.strip(),
        since,
        until,
    )


FiltersDep = Annotated[Filters, Depends(filters)]


def _local(value: str, tz: str) -> datetime | None:
    """A datetime-local input, read in the community's time zone."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=zone(tz)) if value else None
    except ValueError:
        return None


async def _resident_ids(cid: int, text: str) -> list[int] | None:
    if not text:
        return None
    if text.isdigit():
        return [int(text)] if int(text) < 2**31 else []
    members: list[Any] = await Membership.filter(community_id=cid).values_list(
        "resident_id", flat=True
    )
    found: list[Any] = (
        await Resident.filter(id__in=set(members), name__icontains=text)
        .limit(200)
        .values_list("id", flat=True)
    )
    return [int(i) for i in found]


async def query_events(
    ctx: Ctx, f: Filters, *, limit: int, offset: int = 0, after_id: int | None = None
) -> list[AccessEvent]:
    assert ctx.cid is not None
    return await access.access_events(
        ctx.principal,
        ctx.cid,
        method=f.method,
        result=f.result,
        resident_ids=await _resident_ids(ctx.cid, f.resident),
        device_id=f.door,
        since=_local(f.since, ctx.tz),
        until=_local(f.until, ctx.tz),
        limit=limit,
        offset=offset,
        after_id=after_id,
    )


async def describe(ctx: Ctx, events: list[AccessEvent]) -> list[dict[str, Any]]:
    """Rows as people read them: door name, person, room, reason in words."""
    doors = {
        d.id: d.name
        for d in await Device.filter(id__in={e.device_id for e in events if e.device_id})
    }
    people = {
        r.id: r.name
        for r in await Resident.filter(id__in={e.resident_id for e in events if e.resident_id})
    }
    rooms = {
        r.id: f"{r.building.name}{r.unit.name}{r.number}"
        for r in await Room.filter(
            id__in={e.room_id for e in events if e.room_id}
        ).prefetch_related("building", "unit")
    }
    lang = ctx.lang
    # Camera snapshots of these events (issue 18): a link; opening one asks for a reason.
    camera = await video_captures.captured(access_event_ids=[e.id for e in events])
    return [
        {
            "id": e.id,
            "time": ctx.local(e.created_at),
            "door": doors.get(e.device_id or 0, "—"),
            "method": labels.pick(labels.METHODS, e.method.value, lang),
            "result": e.result.value,
            "result_text": labels.pick(labels.RESULTS, e.result.value, lang),
            "reason": labels.reason(e.reason, lang),
            "person": people.get(e.resident_id or 0, "")
            or (f"#{e.resident_id}" if e.resident_id else e.plate or "—"),
            "room": rooms.get(e.room_id or 0, ""),
            "snapshot": bool(e.snapshot_ref),
            "camera": camera.get(e.id, 0),
        }
        for e in events
    ]


@router.get("/c/{cid}/access")
async def access_log(
    ctx: CommunityCtx, f: FiltersDep, page: Annotated[int, Query(ge=1, le=10_000)] = 1
) -> Response:
    assert ctx.cid is not None
    authorize(ctx.principal, Action.ACCESS_LOG_READ, ctx.cid)
    events = await query_events(ctx, f, limit=PAGE + 1, offset=(page - 1) * PAGE)
    more = len(events) > PAGE
    events = events[:PAGE]
    latest = events[0].id if events else await _latest_id(ctx.cid)
    doors = await Device.filter(community_id=ctx.cid).order_by("name")
    return await render(
        ctx,
        "access.html",
        active="access",
        rows=await describe(ctx, events),
        f=f,
        page=page,
        more=more,
        doors=doors,
        methods=list(AccessMethod),
        results=list(AccessResult),
        labels=labels,
        stream=f"/console/c/{ctx.cid}/access/stream?{f.query(after=latest)}" if page == 1 else "",
    )


async def _latest_id(cid: int) -> int:
    last = await AccessEvent.filter(community_id=cid).order_by("-id").first()
    return last.id if last else 0


@router.get("/c/{cid}/access/stream")
async def access_stream(
    ctx: CommunityCtx, f: FiltersDep, after: Annotated[int, Query(ge=0, lt=2**63)] = 0
) -> StreamingResponse:
    """New rows as server-sent events. It reads the log itself (every second) rather than
    listening on the bus, so rows written by any worker or bridge process appear, and a
    reconnect (the browser sends the last id it saw) misses nothing."""
    assert ctx.cid is not None
    authorize(ctx.principal, Action.ACCESS_LOG_READ, ctx.cid)
    last_seen = ctx.request.headers.get("last-event-id", "")
    cursor = int(last_seen) if last_seen.isdigit() and int(last_seen) < 2**63 else after
    template = env().get_template("_access_rows.html")

    async def events() -> AsyncIterator[bytes]:
        nonlocal cursor
        yield b"retry: 2000\n\n"
        idle = 0
        while not await ctx.request.is_disconnected():
            new = await query_events(ctx, f, limit=100, after_id=cursor)
            if new:
                cursor = new[0].id
                html = template.render(rows=await describe(ctx, new), ctx=ctx, t=ctx.t)
                data = "".join(f"data: {line}\n" for line in html.splitlines() if line.strip())
                yield f"id: {cursor}\nevent: rows\n{data}\n".encode()
                idle = 0
            else:
                idle += 1
                if idle % 15 == 0:
                    yield b": keep-alive\n\n"
            await asyncio.sleep(1.0)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


@router.get("/c/{cid}/access/{eid}/snapshot")
async def snapshot(ctx: CommunityCtx, eid: Annotated[int, Path(gt=0, lt=2**63)]) -> Response:
    data = await access.snapshot(ctx.runtime, ctx.principal, eid)
    return Response(data, media_type="image/jpeg", headers={"cache-control": "no-store"})


@router.get("/c/{cid}/access.csv")
async def export_csv(ctx: CommunityCtx, f: FiltersDep) -> Response:
    assert ctx.cid is not None
    events = await query_events(ctx, f, limit=EXPORT_MAX)
    rows = await describe(ctx, events)
    out = io.StringIO()
    out.write("\ufeff")  # Excel opens UTF-8 CSV with Chinese correctly only with a BOM
    writer = csv.writer(out)
    head = ["time", "door", "method", "result", "reason", "person", "room", "snapshot"]
    writer.writerow([ctx.t(f"csv.{h}") for h in head])
    for r in rows:
        writer.writerow(
            [csv_cell(r[k]) if k != "result" else r["result_text"] for k in head[:-1]]
            + [ctx.t("yes") if r["snapshot"] else ""]
        )
    name = f"access-{ctx.cid}-{datetime.now(zone(ctx.tz)).strftime('%Y%m%d-%H%M')}.csv"
    return Response(
        out.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


i18n.add(
    {
        "csv.time": ("时间", "time"),
        "csv.door": ("门", "door"),
        "csv.method": ("方式", "method"),
        "csv.result": ("结果", "result"),
        "csv.reason": ("原因", "reason"),
        "csv.person": ("人员", "person"),
        "csv.room": ("房间", "room"),
        "csv.snapshot": ("抓拍", "snapshot"),
    }
)
