"""Operators set up communities and staff accounts; admins manage their own staff."""

from __future__ import annotations

from models import AuditLog, StaffAccount, StaffRole, StaffRoleName
from tests.console_helpers import console_client
from tests.helpers import STAFF_PASSWORD, every_item, make_staff, make_world, staff_headers
from tests.stack import Stack

V1 = "/api/v1"


async def operator_headers(stack: Stack) -> tuple[StaffAccount, dict[str, str]]:
    world = await make_world(buildings=1, units=1, rooms_per_unit=1)
    op = await make_staff(world.community)
    op.is_operator = True
    await op.save(update_fields=["is_operator"])
    return op, await staff_headers(stack, op)


async def test_operator_creates_a_community_and_its_first_staff(stack: Stack) -> None:
    _, op_h = await operator_headers(stack)
    r = await stack.client.post(
        f"{V1}/operator/communities",
        json={"city": "示范市", "name": "第二小区", "name_en": "Second", "address": "幸福路2号"},
        headers=op_h,
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    again = await stack.client.post(
        f"{V1}/operator/communities", json={"city": "示范市", "name": "第二小区"}, headers=op_h
    )
    assert again.status_code == 409
    r = await stack.client.post(
        f"{V1}/staff/accounts",
        json={
            "username": "li.admin",
            "display_name": "李管理",
            "community_id": cid,
            "roles": ["admin"],
        },
        headers=op_h,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["roles"] == {str(cid): ["admin"]} and len(body["password"]) >= 12
    stored = await StaffAccount.get(username="li.admin")
    assert body["password"] not in stored.password_hash
    login = await stack.client.post(
        f"{V1}/auth/staff/login", json={"username": "li.admin", "password": body["password"]}
    )
    assert login.status_code == 200
    overview = await every_item(stack.client, f"{V1}/operator/overview", op_h)
    assert any(row["community"]["id"] == cid for row in overview)
    assert await AuditLog.filter(action="community.created", target_id=str(cid)).exists()


async def test_roles_disable_and_reset_end_every_login(stack: Stack) -> None:
    world = await make_world()
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    admin_h = await staff_headers(stack, admin)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    async with console_client(stack, guard.username) as (client, _):
        r = await stack.client.put(
            f"{V1}/staff/accounts/{guard.id}/roles",
            json={"community_id": world.community.id, "roles": ["guard", "approver"]},
            headers=admin_h,
        )
        assert r.status_code == 200, r.text
        held = await StaffRole.filter(staff_id=guard.id).values_list("role", flat=True)
        assert sorted(held) == ["approver", "guard"]
        r = await stack.client.post(
            f"{V1}/staff/accounts/{guard.id}/reset-password", headers=admin_h
        )
        assert r.status_code == 200
        new_password = r.json()["password"]
        # The console session from before the reset is over; the old password too.
        page = await client.get(f"/console/c/{world.community.id}/")
        assert page.status_code == 303
        old = await stack.client.post(
            f"{V1}/auth/staff/login", json={"username": guard.username, "password": STAFF_PASSWORD}
        )
        assert old.status_code == 401
        new = await stack.client.post(
            f"{V1}/auth/staff/login", json={"username": guard.username, "password": new_password}
        )
        assert new.status_code == 200
    r = await stack.client.post(f"{V1}/staff/accounts/{guard.id}/disable", headers=admin_h)
    assert r.status_code == 200 and r.json()["is_active"] is False
    refreshed = await stack.client.post(
        f"{V1}/auth/refresh", json={"refresh_token": new.json()["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_an_admin_manages_only_their_own_communitys_staff(stack: Stack) -> None:
    world, other = await make_world(), await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    elsewhere = await make_staff(other.community, StaffRoleName.GUARD)
    both = await make_staff(world.community, StaffRoleName.GUARD)
    await StaffRole.create(staff=both, community=other.community, role=StaffRoleName.GUARD)
    for target in (elsewhere, both):
        r = await stack.client.post(
            f"{V1}/staff/accounts/{target.id}/reset-password", headers=admin_h
        )
        assert r.status_code == 404, r.text
    r = await stack.client.post(
        f"{V1}/staff/accounts",
        json={"username": "x.other", "community_id": other.community.id, "roles": ["guard"]},
        headers=admin_h,
    )
    assert r.status_code == 404
    r = await stack.client.post(
        f"{V1}/operator/communities", json={"city": "c", "name": "n"}, headers=admin_h
    )
    assert r.status_code == 403
    guard_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.GUARD))
    r = await stack.client.post(
        f"{V1}/staff/accounts",
        json={"username": "x.mine", "community_id": world.community.id, "roles": ["guard"]},
        headers=guard_h,
    )
    assert r.status_code == 403
    listed = await stack.client.get(f"{V1}/staff/accounts", headers=admin_h)
    names = {a["username"] for a in listed.json()["items"]}
    assert elsewhere.username not in names and both.username not in names


async def test_the_overview_counts_each_community_apart(stack: Stack) -> None:
    from anxin.clock import utcnow
    from domain.dashboard import service as dashboard
    from models import (
        AccessEvent,
        AccessMethod,
        AccessResult,
        Alarm,
        AlarmKind,
        Community,
        Device,
        DeviceKind,
    )

    op, op_h = await operator_headers(stack)
    a, b = await make_world(), await make_world()
    for world, granted, refused in ((a, 3, 1), (b, 1, 2)):
        for result, n in ((AccessResult.GRANTED, granted), (AccessResult.DENIED, refused)):
            for _ in range(n):
                await AccessEvent.create(
                    community_id=world.community.id,
                    method=AccessMethod.CARD,
                    result=result,
                    reason="resident",
                    created_at=utcnow(),
                )
    await Alarm.create(community_id=b.community.id, kind=AlarmKind.FENCE)
    await Device.create(
        device_uid=f"ov-{b.community.id}",
        community=b.community,
        kind=DeviceKind.FACE_GATE,
        name="门",
        online=False,
    )
    overview = await every_item(stack.client, f"{V1}/operator/overview", op_h)
    rows = {row["community"]["id"]: row for row in overview}
    assert (rows[a.community.id]["entries_today"], rows[a.community.id]["refused_today"]) == (3, 1)
    assert (rows[b.community.id]["entries_today"], rows[b.community.id]["refused_today"]) == (1, 2)
    assert rows[b.community.id]["open_alarms"] == 1 and rows[a.community.id]["open_alarms"] == 0
    assert rows[b.community.id]["devices_offline"] == 1
    # The grouped figures agree with the one-community summary of the home page.
    from auth.permissions import load_principal

    principal = await load_principal("staff", op.id)
    for community, summary in await dashboard.operator_overview(principal):
        if community.id in (a.community.id, b.community.id):
            one = await dashboard.summary(principal, await Community.get(id=community.id))
            assert vars(one) == vars(summary)
