"""Authz matrix entries for the staff operations the console needed (merged into
tests/authz_table.py TABLE): snapshots, a guard opening a door, ..."""

from __future__ import annotations

import httpx

from device_bridge.snapshots import snapshot_store
from models import AccessEvent, AccessMethod, AccessResult, AuditLog, DeviceStatus
from tests.authz_table import (
    ADMIN,
    GUARD,
    OUTSIDER,
    V1,
    Call,
    Ctx,
    Rule,
    fresh_device,
    no_probing,
    swap_param,
    tag,
)

JPEG = b"\xff\xd8\xff\xe0 matrix snapshot"


async def p_snapshot(ctx: Ctx, role: str) -> Call:
    cid = ctx.world.community.id
    ref = snapshot_store(ctx.stack.settings).save(cid, f"m-{tag()}", JPEG)
    event = await AccessEvent.create(
        community_id=cid,
        method=AccessMethod.FACE,
        result=AccessResult.DENIED,
        reason="unknown_person",
        snapshot_ref=ref,
    )
    return Call(params={"event_id": event.id})


async def v_snapshot(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.content == JPEG and r.headers["content-type"] == "image/jpeg"
    assert await AuditLog.filter(
        action="snapshot.viewed", target_id=str(call.params["event_id"])
    ).exists()


async def p_staff_open(ctx: Ctx, role: str) -> Call:
    # A disabled door: the allowed roles pass the permission check and are then told the
    # door is not active (a live door needs a device on the line: tests/browser).
    device = await fresh_device(ctx)
    device.status = DeviceStatus.DISABLED
    await device.save(update_fields=["status"])
    return Call(params={"device_id": device.id}, json={"reason": "矩阵测试"})


async def v_staff_open(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.json()["error"]["code"] == "device_not_active", r.text


RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{V1}/staff/access-events/{{event_id}}/snapshot"): Rule(
        "staff", frozenset({ADMIN, GUARD}), p_snapshot, verify=v_snapshot
    ),
    ("POST", f"{V1}/staff/devices/{{device_id}}/open"): Rule(
        "staff", frozenset({ADMIN, GUARD}), p_staff_open, ok=409, verify=v_staff_open
    ),
}

no_probing(
    RULES,
    {
        ("GET", f"{V1}/staff/access-events/{{event_id}}/snapshot"): swap_param("event_id"),
        ("POST", f"{V1}/staff/devices/{{device_id}}/open"): swap_param("device_id"),
    },
    frozenset({OUTSIDER}),
)
