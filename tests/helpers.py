"""Builders for test worlds: a community with rooms, staff with roles, logged-in residents."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from auth.passwords import hash_password
from miniprogram_mock.client import MiniProgram
from models import (
    Building,
    City,
    Community,
    FaceSelfEnrollment,
    Room,
    StaffAccount,
    StaffRole,
    StaffRoleName,
    Unit,
)
from tests.stack import Stack

STAFF_PASSWORD = "correct horse battery staple"


@lru_cache(maxsize=1)
def _staff_hash() -> str:
    return hash_password(STAFF_PASSWORD)


@dataclass
class World:
    community: Community
    rooms: list[Room]
    buildings: list[Building] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)


async def make_world(buildings: int = 1, units: int = 2, rooms_per_unit: int = 3) -> World:
    tag = secrets.token_hex(3)
    city, _ = await City.get_or_create(name="测试市", defaults={"name_en": "Test City"})
    # Tests enroll faces from still photos; the default (active liveness only) and its
    # refusal of a photo are tested in tests/test_stated_rules.py.
    community = await Community.create(
        city=city,
        name=f"测试小区-{tag}",
        name_en=f"Test {tag}",
        face_self_enrollment=FaceSelfEnrollment.PHOTO,
    )
    world = World(community, [])
    for b in range(1, buildings + 1):
        building = await Building.create(community=community, name=f"{b}栋")
        world.buildings.append(building)
        for u in range(1, units + 1):
            unit = await Unit.create(building=building, community=community, name=f"{u}单元")
            world.units.append(unit)
            for r in range(1, rooms_per_unit + 1):
                world.rooms.append(
                    await Room.create(
                        unit=unit, building=building, community=community, number=f"{r}01"
                    )
                )
    return world


async def make_staff(community: Community, *roles: StaffRoleName) -> StaffAccount:
    staff = await StaffAccount.create(
        username=f"staff-{secrets.token_hex(4)}", password_hash=_staff_hash()
    )
    for role in roles:
        await StaffRole.create(staff=staff, community=community, role=role)
    return staff


async def staff_headers(stack: Stack, staff: StaffAccount) -> dict[str, str]:
    r = await stack.client.post(
        "/api/v1/auth/staff/login", json={"username": staff.username, "password": STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def new_resident(stack: Stack) -> MiniProgram:
    app = MiniProgram(stack.client, stack.wechat_url)
    await app.login()
    return app


async def approved_resident(
    stack: Stack, room: Room, staff_h: dict[str, str], role: str = "owner"
) -> MiniProgram:
    app = await new_resident(stack)
    r = await app.join(room.id, role)
    assert r.status_code == 201, r.text
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{r.json()['id']}/approve", json={"reason": ""}, headers=staff_h
    )
    assert r.status_code == 200, r.text
    return app


def items(response: Any) -> list[Any]:
    """The items of one page of a collection (the API's one list shape)."""
    body = response.json()
    assert set(body) >= {"items", "next"}, body
    return body["items"]


async def every_item(client: Any, url: str, headers: dict[str, str]) -> list[Any]:
    """Every item of a collection, following `next` (the session's database holds the
    rows of every other test too, so one page may not reach those of this one)."""
    found: list[Any] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        r = await client.get(url, params=params, headers=headers)
        assert r.status_code == 200, r.text
        found += items(r)
        if r.json()["next"] is None:
            return found
        params["cursor"] = r.json()["next"]


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]
