"""Vehicles: households register plates; a barrier gate opens for them and for visitor
passes that name the plate, and refuses every other car."""

from __future__ import annotations

from datetime import timedelta

from anxin.clock import utcnow
from anxin.errors import conflict, invalid, not_found
from anxin.runtime import Runtime
from auth.permissions import require_membership
from domain import audit
from domain.access.policy import Decision, device_accepts
from domain.passes import service as passes
from domain.passes.plates import normalize_plate, parse_plate
from domain.passes.tokens import LEEWAY_S, covers
from models import (
    AccessMethod,
    AlarmKind,
    BlockKind,
    BlocklistEntry,
    Device,
    Membership,
    MembershipState,
    PassState,
    Vehicle,
    VisitorPass,
)

MAX_VEHICLES_PER_HOUSEHOLD = 5


async def household_vehicles(resident_id: int, room_id: int) -> list[Vehicle]:
    await require_membership(resident_id, room_id)
    return await Vehicle.filter(room_id=room_id).order_by("id")


async def add_vehicle(resident_id: int, room_id: int, raw_plate: str) -> Vehicle:
    membership = await require_membership(resident_id, room_id)
    plate = parse_plate(raw_plate)
    if await Vehicle.filter(room_id=room_id).count() >= MAX_VEHICLES_PER_HOUSEHOLD:
        raise invalid(
            "too_many_vehicles",
            f"每户最多登记{MAX_VEHICLES_PER_HOUSEHOLD}辆车",
            f"at most {MAX_VEHICLES_PER_HOUSEHOLD} vehicles per household",
        )
    if await Vehicle.exists(community_id=membership.community_id, plate=plate):
        raise conflict("plate_registered", "该车牌已在本小区登记", "plate already registered here")
    vehicle = await Vehicle.create(
        community_id=membership.community_id, room_id=room_id, plate=plate, added_by_id=resident_id
    )
    await audit.record(
        "vehicle.add",
        actor_type="resident",
        actor_id=resident_id,
        community_id=membership.community_id,
        target_type="vehicle",
        target_id=vehicle.id,
        details={"plate": plate},
    )
    return vehicle


async def remove_vehicle(resident_id: int, room_id: int, vehicle_id: int) -> None:
    membership = await require_membership(resident_id, room_id)
    if not await Vehicle.filter(id=vehicle_id, room_id=room_id).delete():
        raise not_found("vehicle")
    await audit.record(
        "vehicle.remove",
        actor_type="resident",
        actor_id=resident_id,
        community_id=membership.community_id,
        target_type="vehicle",
        target_id=vehicle_id,
    )


async def plate_blocklisted(community_id: int, plate: str) -> bool:
    return await BlocklistEntry.exists(
        community_id=community_id, kind=BlockKind.PLATE, plate=plate, active=True
    )


async def plate_decision(
    runtime: Runtime, device: Device, raw_plate: str, direction: str
) -> tuple[Decision, str]:
    """Entry: a registered car of an approved household, or a valid visitor pass naming
    the plate (one use taken); everything else stays out. Exit: open, but still log."""
    plate = normalize_plate(raw_plate)
    refusal = device_accepts(device, AccessMethod.PLATE)
    if refusal is not None:
        return refusal, plate
    if await plate_blocklisted(device.community_id, plate):
        return Decision.deny("blocklisted_plate", alarm=AlarmKind.BLOCKLIST), plate
    if direction == "out":
        return Decision(True, "vehicle_exit"), plate
    vehicle = await Vehicle.get_or_none(community_id=device.community_id, plate=plate)
    if vehicle is not None and await Membership.exists(
        room_id=vehicle.room_id, state=MembershipState.APPROVED
    ):
        return Decision(True, "registered_plate", room_id=vehicle.room_id), plate
    now = utcnow()
    candidates = await VisitorPass.filter(
        community_id=device.community_id,
        plate=plate,
        state__in=[PassState.ACTIVE, PassState.EXHAUSTED, PassState.REVOKED],
        valid_from__lte=now + timedelta(seconds=LEEWAY_S),
        valid_until__gte=now - timedelta(seconds=LEEWAY_S),
    ).order_by("valid_until")
    last: Decision | None = None
    for p in candidates:
        community_gate = device.building_id is None and device.unit_id is None
        if not covers(p.doors, device.device_uid, community_gate):
            last = Decision.deny("pass_wrong_door", pass_id=p.id, room_id=p.room_id)
            continue
        if p.state != PassState.ACTIVE:  # say why, rather than "unknown vehicle"
            last = last or Decision.deny(passes.stopped_reason(p), pass_id=p.id, room_id=p.room_id)
            continue
        decision, _ = await passes.take_use(runtime, p)
        if decision.granted:
            return decision, plate
        last = decision
    return last or Decision.deny("unknown_plate"), plate
