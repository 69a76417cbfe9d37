"""Alarms to acknowledge and close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from auth.permissions import Action
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, done, render
from domain.alarms import service as alarms
from domain.video import captures as video_captures
from models import AlarmState, Device

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem("alarms", "nav.alarms", "/console/c/{cid}/alarms", (Action.ALARM_HANDLE,), order=35)
)

i18n.add(
    {
        "nav.alarms": ("告警", "Alarms"),
        "alarms.title": ("告警", "Alarms"),
        "alarms.kind": ("类型", "Kind"),
        "alarms.device": ("设备", "Device"),
        "alarms.note": ("处理说明", "Note"),
        "alarms.ack": ("确认", "Acknowledge"),
        "alarms.close": ("关闭", "Close"),
        "alarms.open_only": ("仅未处理", "Open only"),
        "alarms.all": ("全部", "All"),
        "done.acknowledged": ("已确认", "Acknowledged"),
        "done.closed": ("已关闭", "Closed"),
        "alarm_state.open": ("未处理", "open"),
        "alarm_state.acknowledged": ("已确认", "acknowledged"),
        "alarm_state.closed": ("已关闭", "closed"),
    }
)


@router.get("/c/{cid}/alarms")
async def alarm_list(
    ctx: CommunityCtx, state: Annotated[str, Query(max_length=16)] = "active"
) -> Response:
    assert ctx.cid is not None
    wanted = AlarmState(state) if state in AlarmState._value2member_map_ else None
    rows = await alarms.list_alarms(ctx.principal, ctx.cid, state=wanted, limit=200)
    if state == "active":
        rows = [a for a in rows if a.state != AlarmState.CLOSED]
    names = {
        d.id: d.name for d in await Device.filter(id__in={a.device_id for a in rows if a.device_id})
    }
    return await render(
        ctx,
        "alarms.html",
        active="alarms",
        alarms=rows,
        names=names,
        texts=alarms.ALARM_TEXT,
        state=state,
        # Camera snapshot and clip of each alarm (issue 18): opening one asks for a reason.
        camera=await video_captures.captured(alarm_ids=[a.id for a in rows]),
    )


@router.post("/c/{cid}/alarms/{alarm_id}")
async def handle(
    ctx: CommunityCtx,
    alarm_id: int,
    state: Annotated[AlarmState, Form()],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    await alarms.handle_alarm(ctx.principal, alarm_id, state, note.strip())
    key = "done.closed" if state == AlarmState.CLOSED else "done.acknowledged"
    return await done(ctx, f"/console/c/{ctx.cid}/alarms", key)
