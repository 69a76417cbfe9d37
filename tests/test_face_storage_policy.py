"""Choosing where a community's faces live: only while it holds none."""

from __future__ import annotations

from models import (
    AuditLog,
    Community,
    EnrollmentMethod,
    EnrollmentState,
    FaceEnrollment,
    FaceStoragePolicy,
    Resident,
    StaffRoleName,
)
from tests.helpers import error_code, make_staff, make_world, staff_headers
from tests.stack import Stack


async def test_policy_changes_only_while_no_faces_are_held(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    url = f"/api/v1/staff/communities/{cid}/face-storage-policy"

    r = await stack.client.put(url, json={"policy": "central"}, headers=admin_h)
    assert r.status_code == 200 and r.json()["face_storage_policy"] == "central"
    assert await AuditLog.filter(action="community.face_storage_policy", community_id=cid).exists()

    resident = await Resident.create(name="已登记")
    await FaceEnrollment.create(
        resident_id=resident.id,
        community_id=cid,
        submitted_by_type="resident",
        submitted_by_id=resident.id,
        method=EnrollmentMethod.PHOTO,
        state=EnrollmentState.PENDING,
        storage_policy="central",
        backend="insightface",
    )
    r = await stack.client.put(url, json={"policy": "edge"}, headers=admin_h)
    assert r.status_code == 409 and error_code(r) == "face_policy_change_needs_reenrollment"
    assert (await Community.get(id=cid)).face_storage_policy == FaceStoragePolicy.CENTRAL

    r = await stack.client.put(url, json={"policy": "nowhere"}, headers=admin_h)
    assert r.status_code == 422
