"""Remote opening from the mini-program: policy, rate limit, signed command, ack, log."""

from __future__ import annotations

from dataclasses import dataclass

from anxin.errors import (
    Forbidden,
    UpstreamFailed,
    UpstreamTimeout,
    conflict,
    invalid,
    not_found,
    too_many,
)
from anxin.runtime import Runtime
from auth.permissions import Action, Principal, resident_principal_with, scoped_row
from domain import audit
from domain.access.log import Notice
from domain.access.policy import (
    Decision,
    reason_text,
    resident_and_doors,
    resident_may_enter,
)
from domain.alarms.service import raise_alarm
from domain.ports import DEVICES, CommandResult
from models import AccessMethod, Device, DeviceStatus, MembershipState, Resident
from models.bulk import columns
from notifications.catalog import EventType

# A person at a door opens it once or twice; dozens a minute is a script or a stuck button.
REMOTE_OPENS_PER_MINUTE = 10


@dataclass
class RemoteOpen:
    event_id: int | None
    command_id: str
    latency_ms: float | None


async def caller_doors(resident_id: int) -> tuple[Principal, list[Device]]:
    """The resident, read now and refused as `load_principal` refuses, and the doors they
    may open, in one statement."""
    return await resident_and_doors(resident_id)


_DOOR_SQL: str | None = None


async def caller_and_door(resident_id: int, device_id: int) -> tuple[Principal, Device | None]:
    """`load_principal` for the resident and the door, if they live (approved) in its
    community, in one prepared statement (the ORM built two queries per open), read fresh
    each time."""
    global _DOOR_SQL
    if _DOOR_SQL is None:
        _DOOR_SQL = (
            f'SELECT {columns(Device, "d")} FROM "device" d '
            'WHERE d."id" = ? AND EXISTS (SELECT 1 FROM '
            '"membership" m WHERE m."resident_id" = ? AND m."community_id" = d."community_id" '
            'AND m."state" = ?)'
        )
    principal, _, rows = await resident_principal_with(
        resident_id,
        rows=_DOOR_SQL,
        row_values=[device_id, resident_id, MembershipState.APPROVED.value],
    )
    return principal, Device._init_from_db(**rows[0]) if rows else None


async def _rate_limit(runtime: Runtime, resident_id: int) -> None:
    # The window starts at the first open (the key's TTL), so a burst cannot straddle
    # two clock minutes and get twice the allowance.
    key = f"remote-open:{resident_id}"
    count = await runtime.kv.incr(key, 60)
    if count > REMOTE_OPENS_PER_MINUTE:
        raise too_many(
            "remote_open_rate_limited",
            "开门过于频繁，请稍后再试",
            "too many remote opens, try again shortly",
            retry_after=max(1, await runtime.kv.ttl(key)),
        )


def refusal_error(decision: Decision) -> Forbidden:
    """What a resident is told when the policy refuses them a door."""
    return Forbidden(
        f"door_{decision.reason}",
        f"不能开此门：{reason_text(decision.reason, 'zh')}",
        f"you may not open this door: {reason_text(decision.reason, 'en')}",
        {"reason": decision.reason},
    )


def ack_error(outcome: CommandResult) -> UpstreamFailed | UpstreamTimeout | None:
    """None when the door acknowledged; else 504 (no answer in time) or 502 (refused)."""
    if outcome.ok:
        return None
    if outcome.status in ("timeout", "expired"):
        return UpstreamTimeout(
            "door_no_ack",
            "门禁设备未响应，请稍后再试",
            "the door did not acknowledge in time",
            {"command_id": outcome.cmd_id},
        )
    return UpstreamFailed(
        "door_failed",
        "门禁设备未能开门",
        "the door refused or failed to open",
        {"status": outcome.status, "reason": outcome.reason},
    )


async def open_remotely(runtime: Runtime, resident: Resident, device: Device | None) -> RemoteOpen:
    """Open `device` (as `caller_and_door` read it with the caller) for `resident`;
    returns once the device acknowledged.

    A door of a community the resident does not live in is "not found" (no id probing);
    a refusal by the policy is Forbidden with the policy's reason; no acknowledgement in
    time is UpstreamTimeout `door_no_ack` (the attempt is logged as failed)."""
    if device is None:
        raise not_found("door")
    await _rate_limit(runtime, resident.id)
    decision = await resident_may_enter(device, resident.id, AccessMethod.REMOTE)
    if not decision.granted:
        await runtime.get(DEVICES).open_and_log(
            device, AccessMethod.REMOTE, decision, requested_by_id=resident.id
        )
        if decision.alarm is not None:
            await raise_alarm(
                runtime,
                device.community_id,
                decision.alarm,
                device_id=device.id,
                details={"method": "remote", "resident_id": resident.id},
            )
        raise refusal_error(decision)
    decision.reason = "remote_open"
    notice = None
    if decision.room_id is not None:
        notice = Notice(
            EventType.DOOR_OPENED,
            device.community_id,
            {
                "door": device.name,
                "method": "手机开门",
                "method_en": "remote open",
                "resident_id": resident.id,
            },
            rooms=(decision.room_id,),
        )
    outcome, row = await runtime.get(DEVICES).open_and_log(
        device,
        AccessMethod.REMOTE,
        decision,
        person_id=str(resident.id),
        requested_by_id=resident.id,
        timeout=runtime.settings.open_ack_timeout_s,
        notice=notice,
    )
    assert outcome is not None
    if (error := ack_error(outcome)) is not None:
        raise error
    return RemoteOpen(row.id if row else None, outcome.cmd_id, outcome.elapsed_ms)


@dataclass
class StaffOpen:
    event_id: int | None
    command_id: str
    latency_ms: float | None


async def staff_open(
    runtime: Runtime, principal: Principal, device_id: int, reason: str
) -> StaffOpen:
    """A guard opens a door now (a visitor without a phone, an ambulance). Needs a reason;
    the access log row (method `staff`) and the audit row record who and why."""
    device = await scoped_row(principal, Action.DOOR_OPEN, Device, device_id, "door")
    reason = reason.strip()
    if not reason:
        raise invalid("reason_required", "请填写开门原因", "say why the door is opened")
    if device.status != DeviceStatus.ACTIVE:
        raise conflict("device_not_active", "设备未启用", "the device is not active")
    decision = Decision(True, "staff_open", details={"staff_id": principal.id, "why": reason})
    outcome, row = await runtime.get(DEVICES).open_and_log(
        device,
        AccessMethod.STAFF,
        decision,
        person_id=f"staff:{principal.id}",
        timeout=runtime.settings.open_ack_timeout_s,
    )
    assert outcome is not None
    await audit.record(
        "door.staff_open",
        **principal.audit_actor(),
        community_id=device.community_id,
        target_type="device",
        target_id=device.id,
        details={
            "reason": reason,
            "access_event_id": row.id if row else None,
            "command_id": outcome.cmd_id,
            "status": outcome.status,
        },
    )
    if (error := ack_error(outcome)) is not None:
        raise error
    return StaffOpen(row.id if row else None, outcome.cmd_id, outcome.elapsed_ms)
