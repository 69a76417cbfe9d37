"""Alarms for staff: door held or forced open, fence intrusion, blocklist hits, offline."""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from anxin.channels import ALARM_RAISED
from anxin.clock import utcnow
from anxin.errors import conflict
from anxin.runtime import Runtime
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from models import Alarm, AlarmKind, AlarmState, Device, StaffRoleName
from notifications.catalog import EventType
from notifications.outbox import emit

ALARM_TEXT = {
    AlarmKind.HELD_OPEN: ("门长时间未关", "door held open"),
    AlarmKind.FORCED_OPEN: ("门被强行打开", "door forced open"),
    AlarmKind.FENCE: ("周界报警", "perimeter fence alarm"),
    AlarmKind.BLOCKLIST: ("黑名单人员或车辆出现", "blocklisted person or vehicle"),
    AlarmKind.DEVICE_OFFLINE: ("设备离线", "device offline"),
    AlarmKind.CODE_GUESSING: ("疑似密码试探", "repeated wrong door codes"),
    AlarmKind.PASS_OVERUSED: ("通行证超次使用", "pass used more often than allowed"),
}


ALARM_ROLES = (StaffRoleName.ADMIN, StaffRoleName.GUARD)


async def raise_alarm(
    runtime: Runtime,
    community_id: int,
    kind: AlarmKind,
    *,
    device_id: int | None = None,
    details: dict[str, Any] | None = None,
    event_key: str | None = None,
) -> Alarm | None:
    """Write the alarm and, in the same transaction, the notification to the community's
    admins and guards; None when this event already raised it (a redelivery)."""
    details = details or {}
    zh, en = ALARM_TEXT[kind]
    device = await Device.get_or_none(id=device_id) if device_id else None
    place = (device.place or device.name) if device else details.get("place", "")
    try:
        async with in_transaction():
            alarm = await Alarm.create(
                community_id=community_id,
                device_id=device_id,
                kind=kind,
                details=details,
                event_key=event_key,
            )
            if kind == AlarmKind.DEVICE_OFFLINE:
                event_type, payload = (
                    EventType.DEVICE_OFFLINE,
                    {
                        "device": device.name if device else "-",
                        "place": place or "-",
                        "since": details.get("since", "-"),
                        "device_id": device_id,
                    },
                )
            else:
                event_type, payload = (
                    EventType.SECURITY_ALARM,
                    {
                        "alarm": zh,
                        "alarm_en": en,
                        "place": place or "-",
                        "kind": kind.value,
                        "alarm_id": alarm.id,
                    },
                )
            await emit(
                event_type,
                community_id=community_id,
                staff_roles=ALARM_ROLES,
                payload=payload,
                dedupe_key=f"alarm:{alarm.id}",
            )
    except IntegrityError:
        return None
    await runtime.bus.publish(
        ALARM_RAISED,
        {
            "alarm_id": alarm.id,
            "community_id": community_id,
            "device_id": device_id,
            "kind": kind.value,
            "title_zh": zh,
            "title_en": en,
            "details": alarm.details,
        },
    )
    return alarm


async def list_alarms(
    principal: Principal,
    community_id: int,
    *,
    state: AlarmState | None = None,
    limit: int,
    before: int | None = None,
) -> list[Alarm]:
    """Newest first; `before` an id: the alarms older than it (keyset paging)."""
    authorize(principal, Action.ALARM_HANDLE, community_id)
    query = Alarm.filter(community_id=community_id)
    if state is not None:
        query = query.filter(state=state)
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit)


async def handle_alarm(principal: Principal, alarm_id: int, state: AlarmState, note: str) -> Alarm:
    alarm = await scoped_row(principal, Action.ALARM_HANDLE, Alarm, alarm_id, "alarm")
    if alarm.state == AlarmState.CLOSED:
        raise conflict("alarm_closed", "报警已关闭", "alarm already closed")
    alarm.state = state
    alarm.note = note
    alarm.handled_by_id = principal.id
    alarm.handled_at = utcnow()
    await alarm.save()
    await audit.record(
        f"alarm.{state.value}",
        **principal.audit_actor(),
        community_id=alarm.community_id,
        target_type="alarm",
        target_id=alarm.id,
        details={"note": note},
    )
    return alarm
