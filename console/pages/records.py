"""The audit log (admins) and property notices (admins and approvers)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from auth.permissions import Action
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, done, render
from domain.announcements import service as announcements
from domain.announcements.service import BODY_MAX, TITLE_MAX, Audience
from domain.audit import service as audit_log
from models import Building, StaffAccount, Unit

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "notices", "nav.notices", "/console/c/{cid}/notices", (Action.NOTICE_SEND,), order=70
    )
)
nav.register(
    nav.NavItem("audit", "nav.audit", "/console/c/{cid}/audit", (Action.AUDIT_READ,), order=90)
)

i18n.add(
    {
        "nav.notices": ("物业通知", "Notices"),
        "nav.audit": ("操作日志", "Audit log"),
        "notices.title": ("物业通知", "Property notices"),
        "notices.new": ("发布通知", "New notice"),
        "notices.subject": ("标题", "Title"),
        "notices.body": ("正文", "Text"),
        "notices.audience": ("发送范围（不选即全体住户）", "Who (none chosen: every resident)"),
        "notices.buildings": ("楼栋", "Buildings"),
        "notices.units": ("单元", "Units"),
        "notices.send": ("发送", "Send"),
        "notices.sent": ("已发布", "Sent"),
        "notices.rooms": ("房间数", "Rooms"),
        "notices.channels": (
            "住户将在小程序消息中心、实时提醒和微信服务通知中收到。",
            "Residents get it in the app's notification centre, in real time and on WeChat.",
        ),
        "done.notice_sent": ("通知已发布", "Notice sent"),
        "audit.title": ("操作日志", "Audit log"),
        "audit.action": ("操作", "Action"),
        "audit.actor": ("操作人", "By"),
        "audit.target": ("对象", "Target"),
        "audit.details": ("详情", "Details"),
        "audit.filter": ("操作（如 staff. 或 card.issued）", "Action (e.g. staff. or card.issued)"),
        "audit.older": ("更早", "Older"),
    }
)


@router.get("/c/{cid}/notices")
async def notices(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    sent = await announcements.sent_notices(ctx.principal, ctx.cid)
    buildings = await Building.filter(community_id=ctx.cid).order_by("name")
    units = (
        await Unit.filter(community_id=ctx.cid)
        .order_by("building_id", "name")
        .prefetch_related("building")
    )
    return await render(
        ctx,
        "notices.html",
        active="notices",
        sent=sent,
        buildings=buildings,
        units=units,
        title_max=TITLE_MAX,
        body_max=BODY_MAX,
    )


@router.post("/c/{cid}/notices")
async def send_notice(
    ctx: CommunityCtx,
    title: Annotated[str, Form(min_length=1, max_length=TITLE_MAX)],
    body: Annotated[str, Form(min_length=1, max_length=BODY_MAX)],
    building_ids: Annotated[list[int], Form(max_length=200)] = [],  # noqa: B006
    unit_ids: Annotated[list[int], Form(max_length=500)] = [],  # noqa: B006
) -> Response:
    assert ctx.cid is not None
    audience = Audience(building_ids, unit_ids, [])
    await announcements.send_notice(ctx.principal, ctx.cid, title, body, audience)
    return await done(ctx, f"/console/c/{ctx.cid}/notices", "done.notice_sent")


@router.get("/c/{cid}/audit")
async def audit(
    ctx: CommunityCtx,
    action: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[int | None, Query(gt=0, lt=2**63)] = None,
) -> Response:
    assert ctx.cid is not None
    rows = await audit_log.read(ctx.principal, ctx.cid, action=action.strip(), before=before)
    actors = {
        s.id: s.display_name or s.username
        for s in await StaffAccount.filter(
            id__in={r.actor_id for r in rows if r.actor_type == "staff" and r.actor_id}
        )
    }
    return await render(
        ctx,
        "audit.html",
        active="audit",
        rows=rows,
        actors=actors,
        action=action,
        details=lambda d: json.dumps(d, ensure_ascii=False)[:300] if d else "",
    )
