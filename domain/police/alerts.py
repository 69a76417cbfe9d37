"""Police alerts: the police platform's own watchlist (布控) matched something we uploaded
and it tells us so. The hit becomes an alert for the community's security role only --
never ordinary property staff, never residents -- with the capture it refers to; every
acknowledgement and closing is recorded. We never receive or keep the watchlist itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.errors import conflict, not_found
from anxin.timefmt import local_iso
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from models import (
    AccessEvent,
    Community,
    Device,
    PoliceAgreement,
    PoliceAlert,
    PoliceAlertState,
    PoliceUpload,
    StaffRoleName,
)
from notifications.catalog import EventType
from notifications.outbox import emit

ALERT_ROLES = (StaffRoleName.SECURITY,)


class UnknownObject(LookupError):
    """The notification names an object we never sent under this agreement."""


@dataclass(frozen=True)
class DispositionHit:
    notification_id: str
    disposition_id: str
    title: str
    trigger_time: datetime | None
    object_id: str  # the FaceID / MotorVehicleID we uploaded


async def record_hit(agreement: PoliceAgreement, hit: DispositionHit) -> PoliceAlert | None:
    """Write the alert and its notification to the security role in one transaction;
    None when this notification was already recorded (the platform redelivered it)."""
    upload = await PoliceUpload.get_or_none(agreement_id=agreement.id, object_id=hit.object_id)
    if upload is None or not upload.source_key.startswith("access_event:"):
        raise UnknownObject(f"object {hit.object_id} is not ours")
    event = await AccessEvent.get_or_none(id=int(upload.source_key.split(":", 1)[1]))
    device = await Device.get_or_none(id=event.device_id) if event and event.device_id else None
    place = (device.place or device.name) if device else "-"
    try:
        async with in_transaction():
            alert = await PoliceAlert.create(
                agreement_id=agreement.id,
                community_id=agreement.community_id,
                notification_id=hit.notification_id,
                disposition_id=hit.disposition_id,
                title=hit.title[:200],
                trigger_time=hit.trigger_time,
                object_id=hit.object_id,
                access_event_id=event.id if event else None,
                device_id=device.id if device else None,
            )
            await emit(
                EventType.SECURITY_ALARM,
                community_id=agreement.community_id,
                staff_roles=ALERT_ROLES,
                payload={
                    "alarm": "公安布控预警",
                    "alarm_en": "police disposition alert",
                    "place": place,
                    "kind": "police_alert",
                    "alarm_id": alert.id,
                },
                dedupe_key=f"police_alert:{alert.id}",
            )
            await audit.record(
                "police.alert.received",
                actor_type="system",
                actor_id=None,
                community_id=agreement.community_id,
                target_type="police_alert",
                target_id=alert.id,
                details={"notification_id": hit.notification_id, "object_id": hit.object_id},
            )
    except IntegrityError:
        return None
    return alert


async def list_alerts(
    principal: Principal,
    community_id: int,
    *,
    state: PoliceAlertState | None = None,
    limit: int,
    before: int | None = None,
) -> list[PoliceAlert]:
    """Newest first; `before`: an alert id (the page's keyset cursor)."""
    authorize(principal, Action.POLICE_ALERT_HANDLE, community_id)
    q = PoliceAlert.filter(community_id=community_id)
    if state is not None:
        q = q.filter(state=state)
    if before is not None:
        q = q.filter(id__lt=before)
    return await q.order_by("-id").limit(limit)


async def get_alert(principal: Principal, alert_id: int) -> PoliceAlert:
    return await scoped_row(
        principal, Action.POLICE_ALERT_HANDLE, PoliceAlert, alert_id, "police alert"
    )


_NEXT = {
    PoliceAlertState.OPEN: {PoliceAlertState.ACKNOWLEDGED, PoliceAlertState.CLOSED},
    PoliceAlertState.ACKNOWLEDGED: {PoliceAlertState.CLOSED},
    PoliceAlertState.CLOSED: set(),
}


async def handle_alert(
    principal: Principal, alert_id: int, state: PoliceAlertState, note: str
) -> PoliceAlert:
    alert = await get_alert(principal, alert_id)
    if state not in _NEXT[alert.state]:
        raise conflict(
            "alert_state",
            "告警状态不允许该操作",
            f"cannot go from {alert.state.value} to {state.value}",
        )
    now = utcnow()
    alert.state = state
    alert.note = note
    if state == PoliceAlertState.ACKNOWLEDGED:
        alert.acknowledged_by_id, alert.acknowledged_at = principal.id, now
    else:
        alert.closed_by_id, alert.closed_at = principal.id, now
    await alert.save()
    await audit.record(
        f"police.alert.{state.value}",
        **principal.audit_actor(),
        community_id=alert.community_id,
        target_type="police_alert",
        target_id=alert.id,
        details={"note": note},
    )
    return alert


async def alert_capture_ref(principal: Principal, alert_id: int) -> str:
    """The snapshot ref of the capture the alert refers to (opening it is audited)."""
    alert = await get_alert(principal, alert_id)
    event = await AccessEvent.get_or_none(id=alert.access_event_id or 0)
    if event is None or not event.snapshot_ref:
        raise not_found("capture")
    await audit.record(
        "police.alert.capture_viewed",
        **principal.audit_actor(),
        community_id=alert.community_id,
        target_type="police_alert",
        target_id=alert.id,
    )
    return event.snapshot_ref


async def alert_out(a: PoliceAlert) -> dict[str, Any]:
    community = await Community.get(id=a.community_id)
    tz = community.timezone
    event = await AccessEvent.get_or_none(id=a.access_event_id or 0)
    device = await Device.get_or_none(id=a.device_id or 0)
    return {
        "id": a.id,
        "title": a.title,
        "title_zh": "公安布控预警",
        "title_en": "police disposition alert",
        "state": a.state.value,
        "notification_id": a.notification_id,
        "disposition_id": a.disposition_id,
        "object_id": a.object_id,
        "trigger_time": local_iso(a.trigger_time, tz),
        "device_id": a.device_id,
        "door": (device.place or device.name) if device else "",
        "capture": {
            "access_event_id": event.id,
            "method": event.method.value,
            "occurred_at": local_iso(event.occurred_at, tz),
            "plate": event.plate,
            "has_snapshot": bool(event.snapshot_ref),
        }
        if event
        else None,
        "note": a.note,
        "acknowledged_at": local_iso(a.acknowledged_at, tz),
        "closed_at": local_iso(a.closed_at, tz),
        "created_at": local_iso(a.created_at, tz),
    }
