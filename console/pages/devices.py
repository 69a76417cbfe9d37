"""Devices: online state, heartbeat, face-library sync, credential rotation, and a
guard's "open this door now" (recorded with who and why)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from auth.permissions import Action
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, done, render
from domain.devices import service as devices
from domain.doors import service as doors
from domain.faces.library import FACE_LIBRARY
from models import DeviceStatus

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(
    nav.NavItem(
        "devices",
        "nav.devices",
        "/console/c/{cid}/devices",
        (Action.DEVICE_READ, Action.DOOR_OPEN),
        order=40,
    )
)

i18n.add(
    {
        "nav.devices": ("设备", "Devices"),
        "devices.title": ("设备与门禁", "Devices and doors"),
        "devices.kind": ("类型", "Kind"),
        "devices.place": ("位置", "Place"),
        "devices.online": ("在线", "online"),
        "devices.offline": ("离线", "offline"),
        "devices.last_seen": ("最后心跳", "Last heartbeat"),
        "devices.library": ("人脸库（应下发 / 已确认）", "Face library (intended / acknowledged)"),
        "devices.in_sync": ("已同步", "in sync"),
        "devices.behind": ("待同步", "behind"),
        "devices.credentials": ("凭证版本", "Credential version"),
        "devices.rotate": ("轮换凭证", "Rotate credentials"),
        "devices.rotate_confirm": (
            "轮换后旧密钥立即失效，须把新密钥写入设备。确定？",
            "The old secret stops working at once; the device needs the new one. Go on?",
        ),
        "devices.new_secret": (
            "新密钥（只显示这一次，请写入设备）",
            "New secret (shown once: enter it on the device)",
        ),
        "devices.open": ("立即开门", "Open now"),
        "devices.open_reason": ("开门原因", "Reason for opening"),
        "devices.status": ("状态", "Status"),
        "done.opened": ("已开门，已记录", "Opened, and recorded"),
        "device_status.active": ("启用", "active"),
        "device_status.disabled": ("停用", "disabled"),
        "device_status.revoked": ("已吊销", "revoked"),
    }
)


@router.get("/c/{cid}/devices")
async def device_list(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    rows = await devices.list_devices(ctx.principal, ctx.cid)
    library = await ctx.runtime.get(FACE_LIBRARY).status(ctx.cid)
    sync = {d["device_id"]: d for d in library["devices"]}
    return await render(
        ctx, "devices.html", active="devices", devices=rows, sync=sync, version=library["version"]
    )


@router.post("/c/{cid}/devices/{device_id}/open")
async def open_door(
    ctx: CommunityCtx, device_id: int, reason: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    await doors.staff_open(ctx.runtime, ctx.principal, device_id, reason)
    return await done(ctx, f"/console/c/{ctx.cid}/devices", "done.opened")


@router.post("/c/{cid}/devices/{device_id}/rotate")
async def rotate(ctx: CommunityCtx, device_id: int) -> Response:
    creds = await devices.rotate_credentials(
        ctx.principal, ctx.runtime.keyring, ctx.runtime.bus, device_id
    )
    # The secret is shown in this response only (never in a URL or a redirect).
    return await render(
        ctx, "device_secret.html", active="devices", device=creds.device, secret=creds.secret
    )


@router.post("/c/{cid}/devices/{device_id}/status")
async def set_status(
    ctx: CommunityCtx,
    device_id: int,
    status: Annotated[DeviceStatus, Form()],
) -> Response:
    await devices.set_status(ctx.principal, ctx.runtime.bus, device_id, status)
    return await done(ctx, f"/console/c/{ctx.cid}/devices")
