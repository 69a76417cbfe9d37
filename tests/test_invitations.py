"""Resident import makes invitations: it never takes over an account, never approves a
membership by itself, and answers the same for registered and unregistered numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from anxin.clock import clock
from models import (
    AuditLog,
    Invitation,
    InvitationState,
    Membership,
    MembershipState,
    Resident,
    StaffRoleName,
)
from tests.helpers import (
    World,
    approved_resident,
    error_code,
    make_staff,
    make_world,
    new_resident,
    staff_headers,
)
from tests.stack import Stack

_seq = iter(range(10**7))


def phone() -> str:
    return f"136{next(_seq):08d}"


@dataclass
class Env:
    a: World
    b: World
    admin_a: dict[str, str]
    admin_b: dict[str, str]


@pytest.fixture(scope="module")
async def env(stack: Stack) -> AsyncIterator[Env]:
    a = await make_world(units=1, rooms_per_unit=6)
    b = await make_world(units=1, rooms_per_unit=2)
    yield Env(
        a,
        b,
        await staff_headers(stack, await make_staff(a.community, StaffRoleName.ADMIN)),
        await staff_headers(stack, await make_staff(b.community, StaffRoleName.ADMIN)),
    )


async def import_rows(stack: Stack, world: World, h: dict[str, str], *rows: str):  # type: ignore[no-untyped-def]
    csv = "楼栋,单元,房号,姓名,手机号,身份\n" + "".join(f"{r}\n" for r in rows)
    return await stack.client.post(
        f"/api/v1/staff/communities/{world.community.id}/residents/import",
        files={"file": ("r.csv", csv.encode(), "text/csv")},
        headers=h,
    )


def row(world: World, i: int, name: str, number: str, role: str = "业主") -> str:
    room = world.rooms[i]
    return f"1栋,1单元,{room.number},{name},{number},{role}"


async def test_import_does_not_take_over_another_communitys_resident(
    stack: Stack, env: Env
) -> None:
    # Someone who lives in B and has bound their phone.
    victim = await approved_resident(stack, env.b.rooms[0], env.admin_b)
    victim_phone = phone()
    assert (await victim.bind_phone(victim_phone)).status_code == 200
    victim_row = await Resident.get(openid=victim.openid)
    unknown_phone = phone()

    # A's admin imports that number, and a number nobody uses, into identical rooms.
    r1 = await import_rows(stack, env.a, env.admin_a, row(env.a, 0, "冒名", victim_phone))
    r2 = await import_rows(stack, env.a, env.admin_a, row(env.a, 1, "无人", unknown_phone))
    assert r1.status_code == r2.status_code == 200
    # The answers are the same: nothing tells A whether a number is registered.
    assert (
        r1.json()
        == r2.json()
        == {
            "rows": 1,
            "invitations_created": 1,
            "invitations_unchanged": 0,
            "rooms_created": 0,
        }
    )
    listed = await stack.client.get(
        f"/api/v1/staff/communities/{env.a.community.id}/invitations", headers=env.admin_a
    )
    by_phone = {i["phone"]: i for i in listed.json()["items"]}
    assert set(by_phone[victim_phone]) == set(by_phone[unknown_phone])
    assert by_phone[victim_phone]["state"] == by_phone[unknown_phone]["state"] == "pending"

    # No membership of A for the account, no new account for the unknown number.
    assert not await Membership.filter(
        resident_id=victim_row.id, community_id=env.a.community.id
    ).exists()
    assert not await Resident.filter(phone=unknown_phone).exists()
    assert (await Resident.get(id=victim_row.id)).name == victim_row.name

    # The resident decides: they see the invitation, and declining leaves A without them.
    mine = (await victim.get("/api/v1/me/invitations")).json()["items"]
    assert [(i["community_id"], i["room_id"]) for i in mine] == [
        (env.a.community.id, env.a.rooms[0].id)
    ]
    assert mine[0].get("phone") is None and mine[0].get("name") is None
    r = await victim.post(f"/api/v1/me/invitations/{mine[0]['id']}/decline")
    assert r.status_code == 200 and r.json()["state"] == "declined"
    assert not await Membership.filter(
        resident_id=victim_row.id, community_id=env.a.community.id
    ).exists()
    assert (await victim.get("/api/v1/me/invitations")).json()["items"] == []
    await victim.aclose()


async def test_accepting_makes_the_membership(stack: Stack, env: Env) -> None:
    number = phone()
    r = await import_rows(stack, env.a, env.admin_a, row(env.a, 2, "周七", number, "租户"))
    assert r.status_code == 200
    app = await new_resident(stack)
    assert (await app.get("/api/v1/me/invitations")).json()["items"] == []  # no phone bound yet
    assert (await app.get("/api/v1/me/memberships")).json()["items"] == []
    assert (await app.bind_phone(number)).status_code == 200
    assert (await app.get("/api/v1/me/memberships")).json()["items"] == []  # binding joins nothing
    [inv] = (await app.get("/api/v1/me/invitations")).json()["items"]
    assert (inv["room"], inv["role"], inv["state"]) == (env.a.rooms[2].number, "tenant", "pending")

    # Someone else cannot accept it: like a missing one.
    other = await new_resident(stack)
    assert (await other.bind_phone(phone())).status_code == 200
    r = await other.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 404 and error_code(r) == "not_found"

    r = await app.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 200, r.text
    assert (r.json()["room_id"], r.json()["state"], r.json()["role"]) == (
        env.a.rooms[2].id,
        "approved",
        "tenant",
    )
    # Twice is one membership, and the second tap is told so.
    again = await app.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert again.status_code == 409 and error_code(again) == "invitation_closed"
    me = await Resident.get(openid=app.openid)
    assert await Membership.filter(resident_id=me.id, state=MembershipState.APPROVED).count() == 1
    assert me.name == "周七"
    assert await AuditLog.filter(action="invitation.accepted", actor_id=me.id).exists()
    members = await app.get(f"/api/v1/households/{env.a.rooms[2].id}/members")
    assert members.status_code == 200
    for person in (app, other):
        await person.aclose()


async def test_a_pending_request_is_approved_by_accepting(stack: Stack, env: Env) -> None:
    number = phone()
    app = await new_resident(stack)
    assert (await app.bind_phone(number)).status_code == 200
    req = await app.join(env.a.rooms[3].id, "family")
    assert req.status_code == 201
    await import_rows(stack, env.a, env.admin_a, row(env.a, 3, "王五", number))
    [inv] = (await app.get("/api/v1/me/invitations")).json()["items"]
    r = await app.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 200 and r.json()["id"] == req.json()["id"]
    assert (await Membership.get(id=req.json()["id"])).state == MembershipState.APPROVED
    await app.aclose()


async def test_expired_withdrawn_and_blocked(stack: Stack, env: Env) -> None:
    number = phone()
    app = await new_resident(stack)
    assert (await app.bind_phone(number)).status_code == 200
    await import_rows(stack, env.a, env.admin_a, row(env.a, 4, "赵六", number))
    [inv] = (await app.get("/api/v1/me/invitations")).json()["items"]

    # Staff withdraw it: it cannot be accepted any more.
    r = await stack.client.post(
        f"/api/v1/staff/invitations/{inv['id']}/withdraw", headers=env.admin_a
    )
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    r = await app.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 409 and error_code(r) == "invitation_closed"
    # Staff of another community cannot withdraw A's.
    r = await stack.client.post(
        f"/api/v1/staff/invitations/{inv['id']}/withdraw", headers=env.admin_b
    )
    assert r.status_code == 404

    # A new one lapses after its lifetime.
    await import_rows(stack, env.a, env.admin_a, row(env.a, 4, "赵六", number))
    [inv] = (await app.get("/api/v1/me/invitations")).json()["items"]
    clock.advance(stack.settings.invitation_ttl_days * 86400 + 1)
    await app.login()  # the access token lapsed too
    assert (await app.get("/api/v1/me/invitations")).json()["items"] == []
    r = await app.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 409
    clock.reset()

    # Blocked in A: an invitation into A cannot be accepted.
    resident = await approved_resident(stack, env.a.rooms[5], env.admin_a)
    rid = (await Resident.get(openid=resident.openid)).id
    number2 = phone()
    assert (await resident.bind_phone(number2)).status_code == 200
    r = await stack.client.post(
        f"/api/v1/staff/communities/{env.a.community.id}/residents/{rid}/block",
        json={"blocked": True, "reason": "测试"},
        headers=env.admin_a,
    )
    assert r.status_code == 200
    await import_rows(stack, env.a, env.admin_a, row(env.a, 0, "钱八", number2))
    [inv] = (await resident.get("/api/v1/me/invitations")).json()["items"]
    r = await resident.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 403 and error_code(r) == "blocked_in_community"
    assert (await Invitation.get(id=inv["id"])).state == InvitationState.PENDING
    for person in (app, resident):
        await person.aclose()
