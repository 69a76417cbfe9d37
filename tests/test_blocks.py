"""A block belongs to (resident, community): an admin blocks only in their community, only
someone who lives or lived there, and the resident keeps every other home."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from domain.access import policy
from domain.access.policy import resident_may_enter
from miniprogram_mock.client import MiniProgram
from models import (
    AccessMethod,
    AuditLog,
    BlockKind,
    BlocklistEntry,
    Device,
    DeviceKind,
    Membership,
    MembershipState,
    Resident,
    ResidentBlock,
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


@dataclass
class Env:
    a: World
    b: World
    admin_a: dict[str, str]
    admin_b: dict[str, str]
    gate_a: Device
    gate_b: Device


async def gate(world: World) -> Device:
    return await Device.create(
        device_uid=f"gate-{secrets.token_hex(4)}",
        community=world.community,
        kind=DeviceKind.FACE_GATE,
        name="南门",
        methods=["face", "card", "remote", "qr"],
    )


@pytest.fixture(scope="module")
async def env(stack: Stack) -> AsyncIterator[Env]:
    a = await make_world(units=1, rooms_per_unit=3)
    b = await make_world(units=1, rooms_per_unit=3)
    admin_a = await staff_headers(stack, await make_staff(a.community, StaffRoleName.ADMIN))
    admin_b = await staff_headers(stack, await make_staff(b.community, StaffRoleName.ADMIN))
    yield Env(a, b, admin_a, admin_b, await gate(a), await gate(b))


async def in_both(stack: Stack, env: Env) -> tuple[MiniProgram, Resident]:
    """A resident approved in A and in B."""
    app = await approved_resident(stack, env.a.rooms[0], env.admin_a)
    r = await app.join(env.b.rooms[0].id)
    assert r.status_code == 201, r.text
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{r.json()['id']}/approve", json={}, headers=env.admin_b
    )
    assert r.status_code == 200, r.text
    return app, await Resident.get(openid=app.openid)


async def block(stack: Stack, world: World, h: dict[str, str], rid: int, on: bool = True):  # type: ignore[no-untyped-def]
    return await stack.client.post(
        f"/api/v1/staff/communities/{world.community.id}/residents/{rid}/block",
        json={"blocked": on, "reason": "测试"},
        headers=h,
    )


async def test_block_in_a_leaves_the_resident_their_home_in_b(stack: Stack, env: Env) -> None:
    app, resident = await in_both(stack, env)
    assert (await resident_may_enter(env.gate_a, resident.id, AccessMethod.CARD)).granted
    r = await block(stack, env.a, env.admin_a, resident.id)
    assert r.status_code == 200, r.text
    cid = env.a.community.id
    assert r.json() == {"resident_id": resident.id, "community_id": cid, "blocked": True}
    assert await AuditLog.filter(action="resident.blocked", target_id=str(resident.id)).exists()

    # Doors of A refuse, doors of B open.
    in_a = await resident_may_enter(env.gate_a, resident.id, AccessMethod.CARD)
    assert (in_a.granted, in_a.reason) == (False, "resident_blocked")
    assert (await resident_may_enter(env.gate_b, resident.id, AccessMethod.CARD)).granted

    # The account still works: same tokens, a new login, B's doors in the app.
    assert (await app.get("/api/v1/me")).status_code == 200
    assert (await app.refresh()).status_code == 200
    await app.login()
    doors = {d["id"] for d in (await app.get("/api/v1/doors")).json()["items"]}
    assert env.gate_b.id in doors and env.gate_a.id not in doors
    mine = (await app.get("/api/v1/me/memberships")).json()["items"]
    states = {m["community_id"]: m["state"] for m in mine}
    assert states == {env.a.community.id: "suspended", env.b.community.id: "approved"}
    # Nothing of A can be done: no pass for A's room, no new request to join A.
    r = await app.post("/api/v1/passes", json={"room_id": env.a.rooms[0].id})
    assert r.status_code in (403, 404), r.text
    r = await app.post("/api/v1/passes", json={"room_id": env.b.rooms[0].id})
    assert r.status_code == 201, r.text
    r = await app.join(env.a.rooms[1].id)
    assert r.status_code == 403 and error_code(r) == "blocked_in_community"
    listed = await stack.client.get(
        f"/api/v1/staff/communities/{env.a.community.id}/blocks", headers=env.admin_a
    )
    assert [b["resident_id"] for b in listed.json()["items"]] == [resident.id]
    assert (
        await stack.client.get(
            f"/api/v1/staff/communities/{env.b.community.id}/blocks", headers=env.admin_b
        )
    ).json()["items"] == []

    # Unblocking gives A back as it was.
    r = await block(stack, env.a, env.admin_a, resident.id, on=False)
    assert r.status_code == 200 and r.json()["blocked"] is False
    assert (await resident_may_enter(env.gate_a, resident.id, AccessMethod.CARD)).granted
    assert not await Membership.filter(
        resident_id=resident.id, state=MembershipState.SUSPENDED
    ).exists()
    await app.aclose()


async def test_admin_of_a_cannot_block_in_b_or_through_a_request(stack: Stack, env: Env) -> None:
    app, resident = await in_both(stack, env)
    # Through B's community id: not theirs, indistinguishable from a missing one.
    r = await block(stack, env.b, env.admin_a, resident.id)
    assert r.status_code == 404 and error_code(r) == "not_found"
    # A stranger who only asked to join A cannot be blocked (and so not locked out of B).
    stranger = await new_resident(stack)
    assert (await stranger.join(env.b.rooms[1].id)).status_code == 201
    pending = await stranger.join(env.a.rooms[2].id)
    assert pending.status_code == 201
    stranger_id = (await Resident.get(openid=stranger.openid)).id
    r = await block(stack, env.a, env.admin_a, stranger_id)
    assert r.status_code == 409 and error_code(r) == "not_a_resident_here"
    # Someone with no link at all to A: 404, like any id.
    lone = await new_resident(stack)
    r = await block(stack, env.a, env.admin_a, (await Resident.get(openid=lone.openid)).id)
    assert r.status_code == 404
    assert not await ResidentBlock.filter(resident_id__in=[resident.id, stranger_id]).exists()
    for person in (app, stranger, lone):
        await person.aclose()


async def test_a_block_rejects_open_requests_and_survives_move_out(stack: Stack, env: Env) -> None:
    app = await approved_resident(stack, env.a.rooms[1], env.admin_a)
    resident = await Resident.get(openid=app.openid)
    req = await app.join(env.a.rooms[2].id)
    assert req.status_code == 201
    assert (await block(stack, env.a, env.admin_a, resident.id)).status_code == 200
    m = await Membership.get(id=req.json()["id"])
    assert (m.state, m.decision_reason) == (MembershipState.REJECTED, "blocked")
    # Staff can still move a blocked resident out; the block stays.
    home = await Membership.get(resident_id=resident.id, room_id=env.a.rooms[1].id)
    assert home.state == MembershipState.SUSPENDED
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{home.id}/end", json={"reason": "搬离"}, headers=env.admin_a
    )
    assert r.status_code == 200, r.text
    decision = await resident_may_enter(env.gate_a, resident.id, AccessMethod.CARD)
    assert decision.reason == "resident_blocked"
    # Blocking twice is one block and one audit row.
    assert (await block(stack, env.a, env.admin_a, resident.id)).status_code == 200
    assert await ResidentBlock.filter(resident_id=resident.id).count() == 1
    assert await AuditLog.filter(action="resident.blocked", target_id=str(resident.id)).count() == 1
    await app.aclose()


async def test_decisions_read_together_keep_each_residents_own_facts(stack: Stack) -> None:
    """Gate decisions made at the same moment read their memberships and blocklist
    entries in one statement: each resident still gets their own rows and their own
    listing (an entry in another community blocklists nobody here)."""
    here, there = await make_world(units=1, rooms_per_unit=3), await make_world(units=1)
    people = [await Resident.create(openid=f"o-{secrets.token_hex(6)}") for _ in range(4)]
    states = [MembershipState.APPROVED, MembershipState.APPROVED, MembershipState.SUSPENDED]
    for person, room, state in zip(people, here.rooms, states, strict=False):
        await Membership.create(
            resident=person, room=room, community=here.community, role="owner", state=state
        )
    for world, person in ((here, people[1]), (there, people[0])):
        await BlocklistEntry.create(
            community=world.community, kind=BlockKind.PERSON, resident_id=person.id, reason="x"
        )
    cid = here.community.id
    facts = await asyncio.gather(*(policy._facts(p.id, cid) for p in people))  # noqa: SLF001
    assert [blocked for _, blocked in facts] == [False, True, False, False]
    assert [[(r["room_id"], r["state"]) for r in rows] for rows, _ in facts] == [
        [(here.rooms[0].id, MembershipState.APPROVED)],
        [(here.rooms[1].id, MembershipState.APPROVED)],
        [(here.rooms[2].id, MembershipState.SUSPENDED)],
        [],
    ]
    room = here.rooms[0]
    assert facts[0][0][0]["room__unit_id"] == room.unit_id
    assert facts[0][0][0]["room__building_id"] == room.building_id
