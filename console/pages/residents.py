"""Residents and households: search, one resident's history, move-out, block, cards."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from auth.permissions import Action
from console import i18n, labels, nav
from console.pages.access import describe
from console.web import CommunityCtx, ConsoleRoute, done, render
from domain.cards import service as cards
from domain.households import directory
from domain.households import service as households
from models import MembershipState

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "residents",
        "nav.residents",
        "/console/c/{cid}/residents",
        (Action.MEMBERSHIP_READ,),
        order=25,
    )
)

i18n.add(
    {
        "nav.residents": ("住户", "Residents"),
        "residents.title": ("住户与房屋", "Residents and households"),
        "residents.search": ("姓名、手机号、房号或楼栋", "Name, phone, room or building"),
        "residents.state": ("状态", "State"),
        "residents.name": ("姓名", "Name"),
        "residents.phone": ("手机号", "Phone"),
        "residents.room": ("房间", "Room"),
        "residents.role": ("身份", "Role"),
        "residents.blocked": ("已停用", "blocked"),
        "residents.history": ("住户档案", "Resident record"),
        "residents.memberships": ("住户关系", "Households"),
        "residents.entries": ("最近通行", "Recent entries"),
        "residents.cards": ("门禁卡", "Access cards"),
        "residents.faces": ("人脸", "Faces"),
        "residents.move_out": ("办理迁出", "Move out"),
        "residents.move_out_date": ("迁出日期", "Move-out date"),
        "residents.move_out_confirm": (
            "迁出后该住户在此房间的通行权限立即停止。确定？",
            "Their access through this household stops at once. Go on?",
        ),
        "residents.block": ("停用该住户", "Block this resident"),
        "residents.unblock": ("恢复该住户", "Unblock"),
        "residents.block_reason": ("停用原因", "Reason for blocking"),
        "residents.card_no": ("卡号", "Card number"),
        "residents.issue_card": ("发卡", "Issue card"),
        "residents.revoke_card": ("注销", "Revoke"),
        "residents.active": ("有效", "active"),
        "residents.inactive": ("已注销", "revoked"),
        "membership_state.pending": ("待审核", "pending"),
        "membership_state.approved": ("在住", "living here"),
        "membership_state.rejected": ("已驳回", "rejected"),
        "membership_state.ended": ("已迁出", "moved out"),
        "enrollment_state.pending": ("待审核", "pending"),
        "enrollment_state.approved": ("已启用", "in use"),
        "enrollment_state.rejected": ("已驳回", "rejected"),
        "enrollment_state.removed": ("已删除", "removed"),
        "done.moved_out": ("已办理迁出", "Moved out"),
        "done.blocked": ("已停用该住户", "Resident blocked"),
        "done.unblocked": ("已恢复该住户", "Resident unblocked"),
        "done.card_issued": ("已发卡", "Card issued"),
        "done.card_revoked": ("门禁卡已注销", "Card revoked"),
    }
)


@router.get("/c/{cid}/residents")
async def resident_list(
    ctx: CommunityCtx,
    q: Annotated[str, Query(max_length=64)] = "",
    state: Annotated[str, Query(max_length=16)] = "approved",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    assert ctx.cid is not None
    wanted = MembershipState(state) if state in MembershipState._value2member_map_ else None
    rows = await directory.search(ctx.principal, ctx.cid, q, wanted, (page - 1) * directory.PAGE)
    return await render(
        ctx,
        "residents.html",
        active="residents",
        rows=rows[: directory.PAGE],
        more=len(rows) > directory.PAGE,
        q=q,
        state=state,
        page=page,
        states=list(MembershipState),
    )


@router.get("/c/{cid}/residents/{rid}")
async def resident_detail(ctx: CommunityCtx, rid: int) -> Response:
    assert ctx.cid is not None
    record = await directory.history(ctx.principal, ctx.cid, rid)
    return await render(
        ctx,
        "resident.html",
        active="residents",
        h=record,
        events=await describe(ctx, record.events),
        labels=labels,
        today=date.today().isoformat(),
    )


@router.post("/c/{cid}/memberships/{mid}/end")
async def move_out(
    ctx: CommunityCtx,
    mid: int,
    rid: Annotated[int, Form(gt=0, le=2**31 - 1)],
    reason: Annotated[str, Form(max_length=200)] = "",
    move_out_date: Annotated[date | None, Form()] = None,
) -> Response:
    await households.end_membership(ctx.principal, ctx.runtime, mid, reason, move_out_date)
    return await done(ctx, f"/console/c/{ctx.cid}/residents/{rid}", "done.moved_out")


@router.post("/c/{cid}/residents/{rid}/block")
async def block(
    ctx: CommunityCtx,
    rid: int,
    blocked: Annotated[bool, Form()],
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    assert ctx.cid is not None
    await households.set_blocked(
        ctx.principal, ctx.runtime.bus, rid, ctx.cid, blocked, reason, ctx.runtime
    )
    key = "done.blocked" if blocked else "done.unblocked"
    return await done(ctx, f"/console/c/{ctx.cid}/residents/{rid}", key)


@router.post("/c/{cid}/residents/{rid}/cards")
async def issue_card(
    ctx: CommunityCtx, rid: int, card_no: Annotated[str, Form(min_length=1, max_length=64)]
) -> Response:
    assert ctx.cid is not None
    await cards.issue_card(ctx.principal, ctx.cid, rid, card_no)
    return await done(ctx, f"/console/c/{ctx.cid}/residents/{rid}", "done.card_issued")


@router.post("/c/{cid}/cards/{card_id}/revoke")
async def revoke_card(
    ctx: CommunityCtx, card_id: int, rid: Annotated[int, Form(gt=0, le=2**31 - 1)]
) -> Response:
    await cards.revoke_card(ctx.principal, card_id)
    return await done(ctx, f"/console/c/{ctx.cid}/residents/{rid}", "done.card_revoked")
