"""Intercom: a visitor calls a room at a panel, the household answers in the mini-program.

The call rings every approved member (realtime `intercom.call`, plus a WeChat message
queued in the call's own transaction); the first to accept opens the door through the
device port (AccessEvent method intercom, requested_by = who answered); a later accept
gets a Conflict. When every member declined, or
nobody answered within RING_S, the call ends and the refusal is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.errors import Conflict, conflict, not_found
from anxin.runtime import Runtime
from anxin.settings import get_settings
from anxin.timefmt import local_iso
from domain.access.log import record_access
from domain.access.policy import Decision, resident_may_enter
from domain.doors.service import ack_error, refusal_error
from domain.passes.notify import push_residents
from domain.ports import DEVICES
from models import (
    AccessEvent,
    AccessMethod,
    CallState,
    Device,
    IntercomCallRecord,
    Membership,
    MembershipState,
    Resident,
    Room,
)
from models.bulk import insert_many, new_row_values
from notifications.catalog import EventType
from notifications.outbox import emit_many, outbox_row

RING_S = 45


async def household_members(room_id: int) -> list[int]:
    ids: list[Any] = await Membership.filter(
        room_id=room_id, state=MembershipState.APPROVED
    ).values_list("resident_id", flat=True)
    return sorted({int(i) for i in ids})


def call_out(
    call: IntercomCallRecord, door: str = "", room: str = "", tz: str | None = None
) -> dict[str, Any]:
    tz = tz or get_settings().default_timezone
    return {
        "id": call.id,
        "state": call.state.value,
        "room_id": call.room_id,
        "room": room,
        "door": door,
        "device_id": call.device_id,
        "expires_at": local_iso(call.expires_at, tz),
        "timezone": tz,
        "answered_by_id": call.answered_by_id,
    }


async def start_call(
    runtime: Runtime,
    device: Device,
    room: Room,
    event_key: str,
    members: list[int],
    label: str,
) -> IntercomCallRecord:
    """The call row and its WeChat message in one transaction (both or neither); the
    realtime ring goes out after the commit. A redelivered event returns the first call.
    `label`: the room as `room_label` writes it."""
    call = IntercomCallRecord(
        event_key=event_key,
        community_id=device.community_id,
        device_id=device.id,
        room_id=room.id,
        expires_at=utcnow() + timedelta(seconds=RING_S),
    )
    async with in_transaction():
        # A redelivered event (or the same one decided at this moment elsewhere: the
        # insert waits for that one's commit) writes nothing and rings nobody again.
        written = await insert_many(
            IntercomCallRecord, [new_row_values(call)], conflict="event_key"
        )
        if written:
            call.id, call._saved_in_db = written[0]["id"], True
            message = outbox_row(
                EventType.INTERCOM_CALL,
                community_id=device.community_id,
                residents=members,
                payload={"door": device.name, "call_id": call.id, "room": label},
                dedupe_key=f"intercom:{call.id}",
            )
            await emit_many([message])
    if not written:
        return await IntercomCallRecord.get(event_key=event_key)
    await push_residents(
        runtime, members, {"type": "intercom.call", "data": call_out(call, device.name, label)}
    )
    return call


async def _call_for_member(resident_id: int, call_id: int) -> IntercomCallRecord:
    call = await IntercomCallRecord.get_or_none(id=call_id)
    if call is None or not await Membership.exists(
        resident_id=resident_id, room_id=call.room_id, state=MembershipState.APPROVED
    ):
        raise not_found("call")
    return call


def _not_ringing(call: IntercomCallRecord) -> Conflict:
    if call.state == CallState.ACCEPTED:
        return conflict("call_already_answered", "已有家人接听", "someone already answered")
    return conflict("call_ended", "呼叫已结束", f"the call has ended ({call.state.value})")


async def _end(runtime: Runtime, call: IntercomCallRecord, members: list[int]) -> None:
    await push_residents(
        runtime,
        members,
        {"type": "intercom.ended", "data": {"id": call.id, "state": call.state.value}},
    )


@dataclass
class Answered:
    call: IntercomCallRecord
    event: AccessEvent | None
    command_id: str


def answered_out(answered: Answered, tz: str | None = None) -> dict[str, Any]:
    """The answer to an accept (HTTP and realtime alike)."""
    return {
        **call_out(answered.call, tz=tz),
        "opened": True,
        "event_id": answered.event.id if answered.event else None,
        "command_id": answered.command_id,
    }


async def accept_call(runtime: Runtime, resident: Resident, call_id: int) -> Answered:
    call = await _call_for_member(resident.id, call_id)
    now = utcnow()
    if call.state != CallState.RINGING or call.expires_at <= now:
        raise _not_ringing(call)
    device = await Device.get(id=call.device_id)
    decision = await resident_may_enter(device, resident.id, AccessMethod.INTERCOM)
    if not decision.granted:
        raise refusal_error(decision)
    # The first accept wins: one conditional UPDATE, whatever the number of workers.
    won = await IntercomCallRecord.filter(
        id=call.id, state=CallState.RINGING, expires_at__gt=now
    ).update(state=CallState.ACCEPTED, answered_by_id=resident.id, ended_at=now)
    await call.refresh_from_db()
    if not won:
        raise _not_ringing(call)
    outcome, row = await runtime.get(DEVICES).open_and_log(
        device,
        AccessMethod.INTERCOM,
        Decision(True, "intercom_answered", room_id=call.room_id),
        event_key=call.event_key,
        requested_by_id=resident.id,
        timeout=runtime.settings.open_ack_timeout_s,
    )
    assert outcome is not None
    await _end(runtime, call, await household_members(call.room_id))
    if (error := ack_error(outcome)) is not None:
        raise error
    return Answered(call, row, outcome.cmd_id)


async def decline_call(runtime: Runtime, resident: Resident, call_id: int) -> IntercomCallRecord:
    call = await _call_for_member(resident.id, call_id)
    members = await household_members(call.room_id)
    async with in_transaction():
        locked = await IntercomCallRecord.filter(id=call.id).select_for_update().first()
        assert locked is not None
        if locked.state != CallState.RINGING or locked.expires_at <= utcnow():
            raise _not_ringing(locked)
        declined = sorted(set(locked.declined_by or []) | {resident.id})
        locked.declined_by = declined
        all_declined = set(members) <= set(declined)
        if all_declined:
            locked.state, locked.ended_at = CallState.DECLINED, utcnow()
        await locked.save(update_fields=["declined_by", "state", "ended_at"])
    if all_declined:
        await _log_refusal(locked, "intercom_declined")
        await _end(runtime, locked, members)
    return locked


async def _log_refusal(call: IntercomCallRecord, reason: str) -> None:
    device = await Device.get_or_none(id=call.device_id)
    await record_access(
        device,
        call.community_id,
        AccessMethod.INTERCOM,
        Decision.deny(reason, room_id=call.room_id),
        event_key=call.event_key,
    )


async def expire_calls(runtime: Runtime, now: datetime | None = None) -> int:
    """Calls nobody answered in time become missed (scheduler job, every few seconds)."""
    now = now or utcnow()
    missed = 0
    for call in await IntercomCallRecord.filter(state=CallState.RINGING, expires_at__lte=now):
        won = await IntercomCallRecord.filter(id=call.id, state=CallState.RINGING).update(
            state=CallState.MISSED, ended_at=now
        )
        if won:
            missed += 1
            call.state = CallState.MISSED
            await _log_refusal(call, "intercom_missed")
            await _end(runtime, call, await household_members(call.room_id))
    return missed


async def ringing_calls(resident_id: int) -> list[IntercomCallRecord]:
    rooms = await Membership.filter(
        resident_id=resident_id, state=MembershipState.APPROVED
    ).values_list("room_id", flat=True)
    return await IntercomCallRecord.filter(
        room_id__in=list(rooms), state=CallState.RINGING, expires_at__gt=utcnow()
    ).order_by("-id")
