"""Bad input gets a clear 4xx with a stable code, and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from miniprogram_mock.client import MiniProgram
from models import (
    AuditLog,
    Building,
    Membership,
    RefreshToken,
    Resident,
    ResidentBlock,
    Room,
    StaffRoleName,
    Unit,
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
    world: World
    other: World
    admin_h: dict[str, str]
    resident: MiniProgram


@pytest.fixture(scope="module")
async def env(stack: Stack) -> AsyncIterator[Env]:
    world = await make_world(units=1, rooms_per_unit=4)
    other = await make_world(units=1, rooms_per_unit=2)
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    yield Env(world, other, admin_h, resident)
    await resident.aclose()


async def counts() -> dict[str, int]:
    return {
        "residents": await Resident.all().count(),
        "memberships": await Membership.all().count(),
        "buildings": await Building.all().count(),
        "units": await Unit.all().count(),
        "rooms": await Room.all().count(),
        "tokens": await RefreshToken.all().count(),
        "audit": await AuditLog.all().count(),
    }


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, r.text
    assert err["message_zh"] and err["message_en"] and err["request_id"]
    return err


# --- WeChat login codes --------------------------------------------------------------


async def test_unknown_js_code(stack: Stack) -> None:
    before = await counts()
    r = await stack.client.post("/api/v1/auth/wechat/login", json={"js_code": "no-such-code"})
    assert_error(r, 401, "wechat_code_invalid")
    assert await counts() == before


async def test_reused_js_code(stack: Stack) -> None:
    app = MiniProgram(stack.client, stack.wechat_url)
    code = await app.wx_login()
    assert (
        await stack.client.post("/api/v1/auth/wechat/login", json={"js_code": code})
    ).status_code == 200
    before = await counts()
    r = await stack.client.post("/api/v1/auth/wechat/login", json={"js_code": code})
    assert_error(r, 401, "wechat_code_used")
    assert await counts() == before
    await app.aclose()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"js_code": ""},
        {"js_code": "x" * 129},
        {"js_code": 12345},
        {"js_code": None},
        {"js_code": "abc", "extra": 1},
        {"js_code": "a\x00b"},
        [],
    ],
    ids=["missing", "empty", "too-long", "number", "null", "extra-field", "nul-byte", "list"],
)
async def test_malformed_login_body(stack: Stack, body: Any) -> None:
    before = await counts()
    r = await stack.client.post("/api/v1/auth/wechat/login", json=body)
    err = assert_error(r, 422, "validation_error")
    assert err["details"] and all("loc" in d and "type" in d for d in err["details"])
    assert await counts() == before


async def test_not_json_at_all(stack: Stack) -> None:
    r = await stack.client.post(
        "/api/v1/auth/wechat/login",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "u" * 65, "password": "x"},
        {"username": "admin", "password": "p" * 257},
        {"username": "", "password": "x"},
    ],
    ids=["long-username", "long-password", "empty-username"],
)
async def test_overlong_staff_login_fields(stack: Stack, body: dict[str, str]) -> None:
    before = await counts()
    r = await stack.client.post("/api/v1/auth/staff/login", json=body)
    assert_error(r, 422, "validation_error")
    assert await counts() == before  # not even a failed-login audit row


@pytest.mark.parametrize(
    "token",
    ["", "x" * 129, "rt_" + "x" * 120, "not-a-refresh-token", "rt_unknown"],
    ids=["empty", "too-long", "long-with-prefix", "no-prefix", "unknown"],
)
async def test_bad_refresh_tokens(stack: Stack, token: str) -> None:
    before = await counts()
    r = await stack.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert r.status_code in (401, 422), r.text
    assert error_code(r) in ("refresh_token_invalid", "validation_error")
    assert await counts() == before


# --- out-of-range ids, NUL bytes, over-long fields -----------------------------------


BIG = 2**31  # one past a 32-bit primary key: PostgreSQL refuses it as a query argument


async def test_out_of_range_ids_are_4xx_not_500(stack: Stack, env: Env) -> None:
    staff_paths = [
        ("POST", f"/api/v1/staff/memberships/{BIG}/approve", {}),
        ("POST", f"/api/v1/staff/memberships/{2**63}/end", {"reason": "x"}),
        ("GET", f"/api/v1/staff/communities/{BIG}/tree", None),
        ("POST", f"/api/v1/staff/buildings/{BIG}/units", {"name": "x"}),
        ("POST", f"/api/v1/staff/units/{BIG}/rooms", {"number": "x"}),
        ("POST", "/api/v1/staff/memberships/0/approve", {}),
        ("POST", "/api/v1/staff/memberships/-5/approve", {}),
        (
            "POST",
            f"/api/v1/staff/communities/{env.world.community.id}/residents/{BIG}/block",
            {"blocked": True},
        ),
    ]
    before = await counts()
    for method, path, body in staff_paths:
        r = await stack.client.request(method, path, json=body, headers=env.admin_h)
        assert r.status_code == 422 and error_code(r) == "validation_error", (path, r.text)
    for path in (f"/api/v1/households/{BIG}/members", f"/api/v1/communities/{BIG}/rooms"):
        r = await env.resident.get(path, params={"building": "1栋", "unit": "1单元"})
        assert r.status_code == 422, (path, r.text)
    r = await env.resident.join(BIG)
    assert_error(r, 422, "validation_error")
    for params in ({"limit": 10**20}, {"cursor": "x" * 300}):
        r = await stack.client.get(
            f"/api/v1/staff/communities/{env.world.community.id}/memberships",
            params=params,
            headers=env.admin_h,
        )
        assert_error(r, 422, "validation_error")
    assert await counts() == before


async def test_nul_bytes_are_refused(stack: Stack, env: Env) -> None:
    before = await counts()
    cid = env.world.community.id
    r = await stack.client.post(
        f"/api/v1/staff/communities/{cid}/buildings", json={"name": "A\x00B"}, headers=env.admin_h
    )
    assert_error(r, 422, "validation_error")
    r = await env.resident.get(
        f"/api/v1/communities/{cid}/rooms", params={"building": "1栋\x00", "unit": "1单元"}
    )
    assert_error(r, 400, "bad_request")
    r = await env.resident.post(
        "/api/v1/memberships",
        json={"room_id": env.world.rooms[1].id, "role": "owner", "note": "\x00"},
    )
    assert_error(r, 422, "validation_error")
    assert await counts() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/buildings", {"name": "楼" * 33}),
        ("/buildings", {"name": ""}),
        ("/buildings", {"name": "   "}),
        ("/buildings", {"name": "A", "community_id": 1}),
    ],
    ids=["too-long", "empty", "blank", "extra-field"],
)
async def test_bad_building_names(stack: Stack, env: Env, path: str, body: Any) -> None:
    before = await counts()
    r = await stack.client.post(
        f"/api/v1/staff/communities/{env.world.community.id}{path}", json=body, headers=env.admin_h
    )
    assert_error(r, 422, "validation_error")
    assert await counts() == before


async def test_overlong_room_number_and_unit_name(stack: Stack, env: Env) -> None:
    before = await counts()
    r = await stack.client.post(
        f"/api/v1/staff/units/{env.world.units[0].id}/rooms",
        json={"number": "1" * 17},
        headers=env.admin_h,
    )
    assert_error(r, 422, "validation_error")
    r = await stack.client.post(
        f"/api/v1/staff/buildings/{env.world.buildings[0].id}/units",
        json={"name": "u" * 33},
        headers=env.admin_h,
    )
    assert_error(r, 422, "validation_error")
    assert await counts() == before


async def test_join_request_validation(stack: Stack, env: Env) -> None:
    app = await new_resident(stack)
    before = await counts()
    for body in (
        {"room_id": env.world.rooms[1].id, "role": "landlord"},
        {"room_id": env.world.rooms[1].id, "role": "owner", "note": "n" * 201},
        {"room_id": "abc", "role": "owner"},
        {"room_id": 0, "role": "owner"},
    ):
        r = await app.post("/api/v1/memberships", json=body)
        assert_error(r, 422, "validation_error")
    r = await app.join(2**31 - 1)
    assert_error(r, 404, "not_found")
    assert await counts() == before
    await app.aclose()


async def test_duplicate_join_and_too_many_open_requests(stack: Stack, env: Env) -> None:
    from domain.households.service import MAX_OPEN_REQUESTS

    app = await new_resident(stack)
    rooms = [*env.world.rooms, *env.other.rooms]
    assert len(rooms) >= MAX_OPEN_REQUESTS + 1
    first = await app.join(rooms[0].id)
    assert first.status_code == 201
    r = await app.join(rooms[0].id)
    err = assert_error(r, 409, "membership_exists")
    assert err["details"]["membership_id"] == first.json()["id"]
    for room in rooms[1:MAX_OPEN_REQUESTS]:
        assert (await app.join(room.id)).status_code == 201
    before = await counts()
    r = await app.join(rooms[MAX_OPEN_REQUESTS].id)
    assert_error(r, 429, "too_many_requests_open")
    assert await counts() == before
    await app.aclose()


async def test_duplicate_tree_names_conflict(stack: Stack, env: Env) -> None:
    before = await counts()
    r = await stack.client.post(
        f"/api/v1/staff/communities/{env.world.community.id}/buildings",
        json={"name": env.world.buildings[0].name},
        headers=env.admin_h,
    )
    assert_error(r, 409, "building_exists")
    r = await stack.client.post(
        f"/api/v1/staff/units/{env.world.units[0].id}/rooms",
        json={"number": env.world.rooms[0].number},
        headers=env.admin_h,
    )
    assert_error(r, 409, "room_exists")
    assert await counts() == before


# --- another community's ids ---------------------------------------------------------


async def test_another_communitys_ids_are_not_found(stack: Stack, env: Env) -> None:
    """Staff of one community probing another's rows learn nothing: 404, nothing changes."""
    other_resident = await approved_resident(
        stack,
        env.other.rooms[0],
        await staff_headers(stack, await make_staff(env.other.community, StaffRoleName.ADMIN)),
    )
    theirs = (await other_resident.get("/api/v1/me/memberships")).json()["items"][0]["id"]
    resident_id = (await Resident.get(openid=other_resident.openid)).id
    before = await counts()
    oc = env.other.community.id
    attempts = [
        ("GET", f"/api/v1/staff/communities/{oc}/tree", None),
        ("GET", f"/api/v1/staff/communities/{oc}/memberships", None),
        ("POST", f"/api/v1/staff/memberships/{theirs}/end", {"reason": "x"}),
        ("POST", f"/api/v1/staff/memberships/{theirs}/approve", {}),
        ("POST", f"/api/v1/staff/communities/{oc}/buildings", {"name": "X"}),
        ("POST", f"/api/v1/staff/buildings/{env.other.buildings[0].id}/units", {"name": "X"}),
        ("POST", f"/api/v1/staff/units/{env.other.units[0].id}/rooms", {"number": "X"}),
        (
            "POST",
            f"/api/v1/staff/communities/{oc}/residents/{resident_id}/block",
            {"blocked": True},
        ),
        # A resident of the other community, blocked through this community: not theirs.
        (
            "POST",
            f"/api/v1/staff/communities/{env.world.community.id}/residents/{resident_id}/block",
            {"blocked": True},
        ),
    ]
    for method, path, body in attempts:
        r = await stack.client.request(method, path, json=body, headers=env.admin_h)
        err = assert_error(r, 404, "not_found")
        assert err["message_zh"] == "未找到该记录", path
    # The same 404 as for an id that does not exist at all.
    r = await stack.client.post(
        f"/api/v1/staff/memberships/{2**31 - 1}/end", json={"reason": "x"}, headers=env.admin_h
    )
    assert_error(r, 404, "not_found")
    assert await counts() == before
    assert not await ResidentBlock.exists(resident_id=resident_id)

    # A resident cannot see or leave a household that is not theirs.
    r = await env.resident.get(f"/api/v1/households/{env.other.rooms[0].id}/members")
    assert_error(r, 404, "not_found")
    r = await env.resident.post(f"/api/v1/me/memberships/{theirs}/leave")
    assert_error(r, 404, "not_found")
    assert await counts() == before
    await other_resident.aclose()
