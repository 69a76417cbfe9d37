"""The community tree (buildings, units, rooms), managed by staff."""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError

from anxin.errors import conflict
from auth.permissions import Action, Principal, authorize, scoped_row, staff_communities
from domain import audit
from models import (
    Building,
    Community,
    EnrollmentState,
    FaceEnrollment,
    FaceSelfEnrollment,
    FaceStoragePolicy,
    Room,
    Unit,
)


async def visible_communities(principal: Principal) -> list[Community]:
    ids = staff_communities(principal, Action.COMMUNITY_READ)
    return await Community.filter(id__in=ids).order_by("id")


async def community_tree(principal: Principal, community_id: int) -> dict[str, Any]:
    authorize(principal, Action.COMMUNITY_READ, community_id)
    community = await Community.get(id=community_id)
    buildings = await Building.filter(community_id=community_id).order_by("name")
    units = await Unit.filter(community_id=community_id).order_by("name")
    rooms = (
        await Room.filter(community_id=community_id)
        .order_by("number")
        .values("id", "unit_id", "number")
    )
    rooms_by_unit: dict[int, list[dict[str, Any]]] = {}
    for r in rooms:
        rooms_by_unit.setdefault(r["unit_id"], []).append({"id": r["id"], "number": r["number"]})
    units_by_building: dict[int, list[dict[str, Any]]] = {}
    for u in units:
        units_by_building.setdefault(u.building_id, []).append(
            {"id": u.id, "name": u.name, "rooms": rooms_by_unit.get(u.id, [])}
        )
    return {
        "id": community.id,
        "name": community.name,
        "name_en": community.name_en,
        "timezone": community.timezone,
        "face_storage_policy": community.face_storage_policy.value,
        "buildings": [
            {"id": b.id, "name": b.name, "units": units_by_building.get(b.id, [])}
            for b in buildings
        ],
    }


async def _audit_create(
    principal: Principal, community_id: int, kind: str, obj_id: int, name: str
) -> None:
    await audit.record(
        f"{kind}.created",
        **principal.audit_actor(),
        community_id=community_id,
        target_type=kind,
        target_id=obj_id,
        details={"name": name},
    )


def _duplicate(kind: str) -> Exception:
    return conflict(f"{kind}_exists", "名称已存在", f"a {kind} with this name exists")


async def create_building(principal: Principal, community_id: int, name: str) -> Building:
    authorize(principal, Action.COMMUNITY_MANAGE, community_id)
    try:
        building = await Building.create(community_id=community_id, name=name)
    except IntegrityError as exc:
        raise _duplicate("building") from exc
    await _audit_create(principal, community_id, "building", building.id, name)
    return building


async def create_unit(principal: Principal, building_id: int, name: str) -> Unit:
    building = await scoped_row(
        principal, Action.COMMUNITY_MANAGE, Building, building_id, "building"
    )
    try:
        unit = await Unit.create(
            building_id=building.id, community_id=building.community_id, name=name
        )
    except IntegrityError as exc:
        raise _duplicate("unit") from exc
    await _audit_create(principal, building.community_id, "unit", unit.id, name)
    return unit


async def create_room(principal: Principal, unit_id: int, number: str) -> Room:
    unit = await scoped_row(principal, Action.COMMUNITY_MANAGE, Unit, unit_id, "unit")
    try:
        room = await Room.create(
            unit_id=unit.id,
            building_id=unit.building_id,
            community_id=unit.community_id,
            number=number,
        )
    except IntegrityError as exc:
        raise _duplicate("room") from exc
    await _audit_create(principal, unit.community_id, "room", room.id, number)
    return room


async def find_room(community_id: int, building: str, unit: str, number: str) -> Room | None:
    return await Room.filter(
        community_id=community_id, building__name=building, unit__name=unit, number=number
    ).first()


async def set_face_storage_policy(
    principal: Principal, community_id: int, policy: FaceStoragePolicy
) -> Community:
    """Choose where the community's faces live. Faces already enrolled were consented to
    and stored under the old policy, so the change is allowed only while the community
    holds none (pending or approved): otherwise residents would have to re-enroll."""
    authorize(principal, Action.COMMUNITY_MANAGE, community_id)
    community = await Community.get(id=community_id)
    if community.face_storage_policy == policy:
        return community
    held = await FaceEnrollment.filter(
        community_id=community_id,
        state__in=[EnrollmentState.PENDING, EnrollmentState.APPROVED],
    ).count()
    if held:
        raise conflict(
            "face_policy_change_needs_reenrollment",
            f"本小区已有{held}份人脸登记，须全部撤回后才能更改存储方式",
            f"{held} face enrollments exist; they must be removed before the policy changes",
            {"enrollments": held},
        )
    old = community.face_storage_policy
    community.face_storage_policy = policy
    await community.save(update_fields=["face_storage_policy"])
    await audit.record(
        "community.face_storage_policy",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="community",
        target_id=community_id,
        details={"from": old.value, "to": policy.value},
    )
    return community


async def set_face_self_enrollment(
    principal: Principal, community_id: int, policy: FaceSelfEnrollment
) -> Community:
    """Whether residents may enroll from the phone with a still photo, or only through the
    active liveness challenge (default). Staff in person may always use a photo."""
    authorize(principal, Action.COMMUNITY_MANAGE, community_id)
    community = await Community.get(id=community_id)
    if community.face_self_enrollment == policy:
        return community
    old = community.face_self_enrollment
    community.face_self_enrollment = policy
    await community.save(update_fields=["face_self_enrollment"])
    await audit.record(
        "community.face_self_enrollment",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="community",
        target_id=community_id,
        details={"from": old.value, "to": policy.value},
    )
    return community
