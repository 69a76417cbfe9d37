"""A new resident's first day, as the mini-program does it, on both backends."""

from __future__ import annotations

from models import AuditLog, Membership, MembershipState, StaffRoleName
from tests.helpers import error_code, make_staff, make_world, new_resident, staff_headers
from tests.stack import Stack


async def test_login_join_approve_see_household(stack: Stack) -> None:
    world = await make_world()
    approver = await make_staff(world.community, StaffRoleName.APPROVER)
    staff_h = await staff_headers(stack, approver)
    app = await new_resident(stack)

    me = await app.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["kind"] == "resident"

    room = world.rooms[0]
    r = await app.join(room.id, "family")
    assert r.status_code == 201, r.text
    membership_id = r.json()["id"]
    assert r.json()["state"] == "pending"

    # Not yet approved: the household stays closed to them.
    r = await app.get(f"/api/v1/households/{room.id}/members")
    assert r.status_code == 404

    queue = await stack.client.get(
        f"/api/v1/staff/communities/{world.community.id}/memberships?state=pending", headers=staff_h
    )
    assert [m["id"] for m in queue.json()["items"]] == [membership_id]

    r = await stack.client.post(
        f"/api/v1/staff/memberships/{membership_id}/approve", json={}, headers=staff_h
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"

    r = await app.get(f"/api/v1/households/{room.id}/members")
    assert r.status_code == 200
    assert [m["role"] for m in r.json()["items"]] == ["family"]
    mine = await app.get("/api/v1/me/memberships")
    assert (
        mine.json()["items"][0]["room"] == room.number
        and mine.json()["items"][0]["building"] == "1栋"
    )

    assert await AuditLog.filter(
        action="membership.approved", target_id=str(membership_id)
    ).exists()

    # Deciding twice is refused and changes nothing.
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{membership_id}/reject",
        json={"reason": "late"},
        headers=staff_h,
    )
    assert r.status_code == 409 and error_code(r) == "membership_not_pending"
    assert (await Membership.get(id=membership_id)).state == MembershipState.APPROVED


async def test_reject_needs_reason_and_is_recorded(stack: Stack) -> None:
    world = await make_world()
    staff_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    app = await new_resident(stack)
    mid = (await app.join(world.rooms[1].id)).json()["id"]
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{mid}/reject", json={"reason": ""}, headers=staff_h
    )
    assert r.status_code == 422 and error_code(r) == "reason_required"
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{mid}/reject",
        json={"reason": "not on the owner's list"},
        headers=staff_h,
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert r.json()["decision_reason"] == "not on the owner's list"
