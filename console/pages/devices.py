"""Devices: online state, heartbeat, face-library sync, credential rotation, and a
guard's "open this door now" (recorded with who and why)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from auth.permissions import Action
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, done, render
from device_bridge.service import BRIDGE
from domain.devices import replacement
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
        "devices.replace": ("替换为新终端", "Replace with a new terminal"),
        "devices.replace_with": ("新终端", "New terminal"),
        "devices.replace_reason": ("替换原因", "Reason for the replacement"),
        "devices.replace_confirm": (
            "旧终端将立即吊销；同小区另一台终端会把人脸库加密复制给新终端，住户无需重新录入。确定？",
            "The old terminal is revoked at once; another terminal of the community copies "
            "its face library, sealed, to the new one: no re-enrollment. Go on?",
        ),
        "devices.replacements": ("终端替换", "Terminal replacements"),
        "done.replacing": (
            "已批准替换：旧终端已吊销，人脸库正在从同伴终端复制",
            "Replacement approved: the old terminal is revoked; the library is being copied",
        ),
        "replacement.exporting": ("等待同伴终端导出", "waiting for the peer's export"),
        "replacement.relaying": ("正在转发给新终端", "relaying to the new terminal"),
        "replacement.done": ("已完成", "done"),
        "replacement.failed": ("失败", "failed"),
    }
)


@router.get("/c/{cid}/devices")
async def device_list(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    rows = await devices.list_devices(ctx.principal, ctx.cid)
    library = await ctx.runtime.get(FACE_LIBRARY).status(ctx.cid)
    sync = {d["device_id"]: d for d in library["devices"]}
    # A face terminal can be replaced by another active one that has reported its key.
    takers = [d for d in rows if d.id in sync and d.library_key]
    return await render(
        ctx,
        "devices.html",
        active="devices",
        devices=rows,
        sync=sync,
        version=library["version"],
        takers=takers,
        replacements=(await replacement.list_replacements(ctx.principal, ctx.cid))[:20],
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
    await ctx.runtime.get(BRIDGE).credentials_changed(creds.device.device_uid)
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
    device = await devices.set_status(ctx.principal, ctx.runtime.bus, device_id, status)
    await ctx.runtime.get(BRIDGE).credentials_changed(device.device_uid)  # the broker follows
    return await done(ctx, f"/console/c/{ctx.cid}/devices")


@router.post("/c/{cid}/devices/{device_id}/replace")
async def replace(
    ctx: CommunityCtx,
    device_id: int,
    new_device_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    row = await replacement.approve_replacement(
        ctx.runtime, ctx.principal, device_id, new_device_id, reason
    )
    await ctx.runtime.get(BRIDGE).credentials_changed(
        (await devices.get_device(ctx.principal, row.old_device_id)).device_uid
    )
    ctx.runtime.get(replacement.REPLACEMENTS).soon(row.id)
    return await done(ctx, f"/console/c/{ctx.cid}/devices", "done.replacing")
