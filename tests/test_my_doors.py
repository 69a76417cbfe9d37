"""The resident's door list (GET /api/v1/doors): the active doors that open remotely and
serve one of their approved homes, read fresh on every request."""

from __future__ import annotations

import secrets

from models import Device, DeviceKind, DeviceStatus, Membership, MembershipState, StaffRoleName
from tests.helpers import World, approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack


async def _device(world: World, name: str, methods: list[str], **where: object) -> Device:
    return await Device.create(
        device_uid=f"door-{secrets.token_hex(4)}",
        community=world.community,
        kind=DeviceKind.FACE_GATE,
        name=name,
        methods=methods,
        **where,
    )


async def test_doors_of_my_homes_that_open_remotely(stack: Stack) -> None:
    world = await make_world(buildings=2, units=2, rooms_per_unit=1)
    other = await make_world(units=1, rooms_per_unit=1)
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    h = await staff_headers(stack, admin)
    room = world.rooms[0]  # building 1, unit 1
    app = await approved_resident(stack, room, h)
    gate = await _device(world, "南门", ["face", "remote"])
    my_building = await _device(world, "1栋", ["remote"], building_id=room.building_id)
    my_unit = await _device(world, "1单元", ["remote", "card"], unit_id=room.unit_id)
    await _device(world, "2单元", ["remote"], unit_id=world.rooms[1].unit_id)  # another unit
    await _device(world, "2栋", ["remote"], building_id=world.rooms[2].building_id)
    await _device(world, "东门", ["face", "card"])  # no remote opening
    off = await _device(world, "北门", ["remote"])
    await Device.filter(id=off.id).update(status=DeviceStatus.DISABLED)
    await _device(other, "别的小区", ["remote"])  # a community they do not live in

    r = await app.get("/api/v1/doors")
    assert r.status_code == 200, r.text
    got = r.json()["items"]
    assert [d["id"] for d in got] == sorted([gate.id, my_building.id, my_unit.id])
    by_id = {d["id"]: d for d in got}
    assert by_id[my_unit.id]["unit_id"] == room.unit_id
    assert by_id[gate.id]["community_id"] == world.community.id

    # Moving out counts on the next request: no home, no doors.
    await Membership.filter(room_id=room.id).update(state=MembershipState.ENDED)
    assert (await app.get("/api/v1/doors")).json()["items"] == []
