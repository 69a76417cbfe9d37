"""Visitors and watch lists: blocklists, passes, and the visitor register with export."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from anxin.timefmt import zone
from auth.permissions import Action
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, done, render
from domain.passes import service as passes
from domain.visitors import blocklist, register
from models import BlockKind, PassState, Resident, Room

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "visitors",
        "nav.visitors",
        "/console/c/{cid}/visitors",
        (Action.VISITOR_REGISTER_READ,),
        order=50,
    )
)
nav.register(
    nav.NavItem(
        "passes", "nav.passes", "/console/c/{cid}/passes", (Action.VISITOR_REGISTER_READ,), order=55
    )
)
nav.register(
    nav.NavItem(
        "blocklist",
        "nav.blocklist",
        "/console/c/{cid}/blocklist",
        (Action.BLOCKLIST_MANAGE,),
        order=60,
    )
)

i18n.add(
    {
        "nav.visitors": ("访客登记", "Visitor register"),
        "nav.passes": ("通行证", "Passes"),
        "nav.blocklist": ("黑名单", "Blocklist"),
        "visitors.title": ("访客登记", "Visitor register"),
        "visitors.since": ("开始日期", "From"),
        "visitors.until": ("结束日期", "Until"),
        "visitors.method": ("方式", "Way in"),
        "visitors.room": ("房屋", "Household"),
        "visitors.visitor": ("访客", "Visitor"),
        "visitors.plate": ("车牌", "Plate"),
        "visitors.door": ("门", "Door"),
        "passes.title": ("访客通行证", "Visitor passes"),
        "passes.kind": ("类型", "Kind"),
        "passes.valid": ("有效期", "Valid"),
        "passes.uses": ("已用 / 上限", "Used / allowed"),
        "passes.revoke": ("作废", "Revoke"),
        "pass_kind.visitor": ("访客", "visitor"),
        "pass_kind.delivery": ("外卖快递", "delivery"),
        "pass_state.active": ("有效", "active"),
        "pass_state.revoked": ("已作废", "revoked"),
        "pass_state.exhausted": ("次数用完", "used up"),
        "pass_state.expired": ("已过期", "expired"),
        "done.pass_revoked": ("通行证已作废，各门已同步", "Pass revoked at every door"),
        "blocklist.title": ("黑名单", "Blocklist"),
        "blocklist.kind": ("类型", "Kind"),
        "blocklist.person": ("人员（住户编号）", "Person (resident id)"),
        "blocklist.plate": ("车牌", "Plate"),
        "blocklist.add": ("加入黑名单", "Add"),
        "blocklist.remove": ("移出", "Remove"),
        "block_kind.person": ("人员", "person"),
        "block_kind.plate": ("车辆", "vehicle"),
        "done.blocklist_added": ("已加入黑名单", "Added to the blocklist"),
        "done.blocklist_removed": ("已移出黑名单", "Removed from the blocklist"),
    }
)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _method(value: str) -> register.VisitMethod | None:
    return value if value in register.METHOD_ZH else None  # type: ignore[return-value]


@router.get("/c/{cid}/visitors")
async def visitor_register(
    ctx: CommunityCtx,
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    method: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    assert ctx.cid is not None
    rows = await register.visits(
        ctx.principal,
        ctx.cid,
        since=_date(since),
        until=_date(until),
        method=_method(method),
        limit=200,
    )
    return await render(
        ctx,
        "visitors.html",
        active="visitors",
        rows=rows,
        since=since,
        until=until,
        method=method,
        methods=register.METHOD_ZH,
    )


@router.get("/c/{cid}/visitors.csv")
async def visitor_register_csv(
    ctx: CommunityCtx,
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    method: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    assert ctx.cid is not None
    rows = await register.visits(
        ctx.principal,
        ctx.cid,
        since=_date(since),
        until=_date(until),
        method=_method(method),
        limit=register.MAX_ROWS,
    )
    stamp = datetime.now(zone(ctx.tz)).strftime("%Y%m%d-%H%M")
    return Response(
        register.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="visitors-{ctx.cid}-{stamp}.csv"'},
    )


@router.get("/c/{cid}/passes")
async def pass_list(
    ctx: CommunityCtx, state: Annotated[str, Query(max_length=16)] = "active"
) -> Response:
    assert ctx.cid is not None
    wanted = PassState(state) if state in PassState._value2member_map_ else None
    rows = await passes.community_passes(ctx.principal, ctx.cid, state=wanted, limit=200)
    rooms = {
        r.id: f"{r.building.name}{r.unit.name}{r.number}"
        for r in await Room.filter(id__in={p.room_id for p in rows}).prefetch_related(
            "building", "unit"
        )
    }
    return await render(
        ctx,
        "passes.html",
        active="passes",
        rows=rows,
        rooms=rooms,
        state=state,
        states=list(PassState),
        effective=passes.effective_state,
        mask=passes.mask_phone,
    )


@router.post("/c/{cid}/passes/{pass_id}/revoke")
async def revoke_pass(ctx: CommunityCtx, pass_id: int) -> Response:
    await passes.staff_revoke(ctx.runtime, ctx.principal, pass_id)
    return await done(ctx, f"/console/c/{ctx.cid}/passes", "done.pass_revoked")


@router.get("/c/{cid}/blocklist")
async def blocklist_page(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    rows = await blocklist.list_entries(ctx.principal, ctx.cid)
    names = {
        r.id: r.name
        for r in await Resident.filter(id__in={e.resident_id for e in rows if e.resident_id})
    }
    return await render(ctx, "blocklist.html", active="blocklist", rows=rows, names=names)


@router.post("/c/{cid}/blocklist")
async def blocklist_add(
    ctx: CommunityCtx,
    kind: Annotated[BlockKind, Form()],
    reason: Annotated[str, Form(min_length=1, max_length=200)],
    resident_id: Annotated[str, Form(max_length=12)] = "",
    plate: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    assert ctx.cid is not None
    rid = int(resident_id) if resident_id.isdigit() and int(resident_id) < 2**31 else None
    await blocklist.add_entry(
        ctx.principal, ctx.cid, kind, reason.strip(), resident_id=rid, plate=plate or None
    )
    return await done(ctx, f"/console/c/{ctx.cid}/blocklist", "done.blocklist_added")


@router.post("/c/{cid}/blocklist/{entry_id}/remove")
async def blocklist_remove(ctx: CommunityCtx, entry_id: int) -> Response:
    await blocklist.remove_entry(ctx.principal, entry_id)
    return await done(ctx, f"/console/c/{ctx.cid}/blocklist", "done.blocklist_removed")
