"""Event handlers for letting visitors in: QR passes, offline pass reports, door codes,
plate reads and intercom calls, and the reconnect hook that re-sends revocations.
Installed by the composition root (boot/roles.py) after the visitor capability
(domain/passes/capability.py: the pass service and the expiry jobs).

The decisions themselves live in plain functions (domain/passes/service.py,
domain/visitors/*.py) that tests call without MQTT.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from anxin.runtime import Runtime
from device_bridge.sealing import SealError
from device_bridge.service import BRIDGE, AccessAttempt, DeviceBridge, EventContext
from device_bridge.transport import InboundState
from domain.access.log import Notice
from domain.access.policy import Decision, device_accepts
from domain.access.snapshots import snapshot_store
from domain.alarms.service import raise_alarm
from domain.passes import service as passes
from domain.passes.tokens import DEVICE_REASONS
from domain.visitors import codes, intercom, vehicles
from domain.visitors.rooms import find_room
from models import AccessMethod, Device, PassKind, PassState, VisitorPass
from notifications.catalog import EventType

log = logging.getLogger(__name__)


def _snapshot(ctx: EventContext, image_b64: str | None) -> str:
    """Keep the gate's photo (encrypted, retention-limited); "" when there is none."""
    if not image_b64:
        return ""
    try:
        data = base64.b64decode(image_b64, validate=True)
        store = snapshot_store(ctx.bridge.runtime.settings)
        return store.save(ctx.device.community_id, ctx.event_key, data)
    except (binascii.Error, ValueError):
        log.info("unusable image in event %s", ctx.event_key)
        return ""


def _pass_notice(ctx: EventContext, p: VisitorPass | None) -> Notice | None:
    """Tell the pass's creator their visitor (or rider) came in: queued with the row."""
    if p is None:
        return None
    door = ctx.device.name
    if p.kind == PassKind.DELIVERY:
        kind, payload = (
            EventType.DOOR_OPENED,
            {
                "door": door,
                "method": "外卖快递通行证",
                "method_en": "delivery pass",
            },
        )
    else:
        kind = EventType.VISITOR_ARRIVED if p.uses <= 1 else EventType.PASS_USED
        payload = {
            "visitor": p.visitor_name or "访客",
            "visitor_en": p.visitor_name or "visitor",
            "door": door,
        }
    return Notice(kind, p.community_id, {**payload, "pass_id": p.id}, residents=(p.created_by_id,))


async def _record_opened_by_device(
    ctx: EventContext, method: AccessMethod, decision: Decision, **kw: Any
) -> None:
    """The device already opened (offline decision): write the row, no command."""
    await ctx.bridge.open_and_log(
        ctx.device,
        method,
        decision,
        event_key=ctx.event_key,
        occurred_at=ctx.occurred_at,
        opened_by_device=True,
        **kw,
    )


async def on_qr_scan(ctx: EventContext) -> None:
    ev, device, runtime = ctx.event, ctx.device, ctx.bridge.runtime
    snapshot_ref = _snapshot(ctx, getattr(ev, "image", None))
    if ev.local_result == "unchecked":
        # The gate asks: the server verifies and takes a use atomically.
        refusal = device_accepts(device, AccessMethod.QR)
        decision, p = (
            (refusal, None) if refusal else await passes.use_online(runtime, device, ev.token)
        )
        attempt = AccessAttempt(
            AccessMethod.QR,
            decision,
            plate=p.plate if p else "",
            snapshot_ref=snapshot_ref,
            notice=_pass_notice(ctx, p),
        )
        await ctx.bridge.execute(ctx, attempt)
        return None
    # The gate decided by itself (offline-capable): record; uses come with pass_used.
    checked, p = await passes.check_at_gate(runtime, device, ev.token)
    if ev.local_result == "accepted":
        if p is None:
            log.warning(
                "gate %s accepted a pass the server rejects (%s): check its key",
                device.device_uid,
                checked.reason,
            )
            entry = Decision(True, "visitor_pass", details={"server_check": checked.reason})
        else:
            entry = Decision(True, passes.grant_reason(p), pass_id=p.id, room_id=p.room_id)
        await _record_opened_by_device(
            ctx,
            AccessMethod.QR,
            entry,
            snapshot_ref=snapshot_ref,
            plate=p.plate if p else "",
            notice=_pass_notice(ctx, p),
        )
        return None
    reason = DEVICE_REASONS.get(ev.reason or "", "pass_invalid")
    if reason == "pass_revoked" and p is not None and p.state == PassState.EXHAUSTED:
        reason = "pass_used_up"  # the gate only knows "revoked"; the pass was used up
    denial = Decision.deny(reason, pass_id=p.id if p else None, room_id=p.room_id if p else None)
    await ctx.bridge.execute(ctx, AccessAttempt(AccessMethod.QR, denial, snapshot_ref=snapshot_ref))
    return None


async def on_pass_used(ctx: EventContext) -> None:
    pid = ctx.event.pass_id
    if not (pid.isdigit() and len(pid) < 10):
        return None
    await passes.reconcile_device_count(
        ctx.bridge.runtime, ctx.device, int(pid), ctx.event.uses, ctx.occurred_at, ctx.event_key
    )
    return None


async def on_code_entry(ctx: EventContext) -> None:
    ev = ctx.event
    assert ctx.bridge.doors is not None
    try:
        code = await ctx.bridge.doors.open_code(
            ctx.device.device_uid, ev.id, ev.room, ev.code_sealed
        )
    except SealError:
        # Not sealed with this panel's key (or moved from another message): never a guess.
        denial = Decision.deny("code_unreadable")
        await ctx.bridge.execute(ctx, AccessAttempt(AccessMethod.CODE, denial))
        return None
    decision = await codes.try_code(ctx.bridge.runtime, ctx.device, ev.room, code)
    notice = None
    if decision.room_id is not None:
        notice = Notice(
            EventType.DOOR_OPENED,
            ctx.device.community_id,
            {"door": ctx.device.name, "method": "亲友密码", "method_en": "household code"},
            rooms=(decision.room_id,),
        )
    await ctx.bridge.execute(ctx, AccessAttempt(AccessMethod.CODE, decision, notice=notice))
    return None


async def on_plate_read(ctx: EventContext) -> None:
    runtime = ctx.bridge.runtime
    decision, plate = await vehicles.plate_decision(
        runtime, ctx.device, ctx.event.plate, ctx.event.direction
    )
    if decision.alarm is not None:
        await raise_alarm(
            runtime,
            ctx.device.community_id,
            decision.alarm,
            device_id=ctx.device.id,
            event_key=ctx.event_key,
            details={"method": "plate", "plate": plate, "device": ctx.device.name},
        )
    p = await VisitorPass.get_or_none(id=decision.pass_id) if decision.pass_id else None
    attempt = AccessAttempt(
        AccessMethod.PLATE,
        decision,
        plate=plate,
        snapshot_ref=_snapshot(ctx, ctx.event.image),
        notice=_pass_notice(ctx, p),
    )
    await ctx.bridge.execute(ctx, attempt)
    return None


async def on_intercom_call(ctx: EventContext) -> AccessAttempt | None:
    device = ctx.device
    refusal = device_accepts(device, AccessMethod.INTERCOM)
    if refusal is not None:
        return AccessAttempt(AccessMethod.INTERCOM, refusal)
    keyed = await find_room(device, ctx.event.room)
    if keyed is None:
        return AccessAttempt(AccessMethod.INTERCOM, Decision.deny("unknown_room"))
    room = keyed.room
    if not keyed.members:
        return AccessAttempt(AccessMethod.INTERCOM, Decision.deny("no_household", room_id=room.id))
    await intercom.start_call(
        ctx.bridge.runtime, device, room, ctx.event_key, keyed.members, keyed.label
    )
    return None  # the door opens when someone answers (domain/visitors/intercom.py)


async def on_device_state(bridge: DeviceBridge, device: Device, inbound: InboundState) -> None:
    if inbound.state.status == "online":
        await passes.on_device_online(bridge.runtime, device)


def install(runtime: Runtime) -> None:
    bridge = runtime.get(BRIDGE)
    bridge.register_event("qr_scan", on_qr_scan)
    bridge.register_event("pass_used", on_pass_used)
    bridge.register_event("code_entry", on_code_entry)
    bridge.register_event("plate_read", on_plate_read)
    bridge.register_event("intercom_call", on_intercom_call)
    bridge.on_state(on_device_state)
