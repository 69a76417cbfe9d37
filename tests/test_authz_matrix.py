"""Every API route, called as every role: who gets in, and that a refusal changes nothing.

The table lives in `tests/authz_table.py`; this module also fails when the app has a route
under /api/v1 that the table does not cover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

from anxin.settings import Settings
from miniprogram_mock.wechat_control import FakeWeChatControl
from models import (
    AuditLog,
    Building,
    Membership,
    MembershipRole,
    MembershipState,
    RefreshToken,
    Resident,
    ResidentBlock,
    Room,
    StaffRoleName,
    Unit,
)
from tests.authz_table import (
    ADMIN,
    ANONYMOUS,
    APPROVER,
    GUARD,
    NEWCOMER,
    OUTSIDER,
    PENDING,
    RESIDENT,
    ROLES,
    TABLE,
    Ctx,
)
from tests.helpers import STAFF_PASSWORD, make_staff, make_world, new_resident, staff_headers
from tests.stack import Stack

_A, _P, _G = StaffRoleName.ADMIN, StaffRoleName.APPROVER, StaffRoleName.GUARD


def _app_routes() -> set[tuple[str, str]]:
    """Every (METHOD, path) the app serves under /api/v1, read from its OpenAPI schema
    (FastAPI keeps included routers behind private wrappers; the schema is the public view)."""
    from boot.roles import build_app

    app = build_app(Settings())
    methods = {"get", "post", "put", "patch", "delete"}
    found = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in item
        if method in methods
    }
    # Routes hidden from the schema are still routes: catch the directly mounted ones too.
    found |= {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/v1")
        for method in route.methods
    }
    assert found, "no /api/v1 routes found: has FastAPI's routing changed?"
    return found


APP_ROUTES = _app_routes()


@pytest.mark.parametrize("key", sorted(APP_ROUTES), ids=" ".join)
def test_every_route_is_in_the_matrix(key: tuple[str, str]) -> None:
    if key in TABLE:
        return
    if key in PENDING:
        pytest.xfail(f"{' '.join(key)}: authz entry pending in tests/authz_table.py")
    pytest.fail(f"{' '.join(key)} has no entry in tests/authz_table.py TABLE (who may call it?)")


def test_table_has_no_stale_entries() -> None:
    assert not (set(TABLE) - APP_ROUTES), "entries for routes the app does not have"
    assert not (PENDING & set(TABLE)), "routes both pending and in TABLE: drop them from PENDING"
    # PENDING may name routes whose router is not wired in yet: that is what it is for.


@pytest.fixture(scope="module")
async def ctx(stack: Stack) -> AsyncIterator[Ctx]:
    world = await make_world(buildings=1, units=2, rooms_per_unit=2)
    other = await make_world(buildings=1, units=1, rooms_per_unit=1)
    headers: dict[str, dict[str, str]] = {ANONYMOUS: {}}
    for role, name in ((ADMIN, _A), (APPROVER, _P), (GUARD, _G)):
        headers[role] = await staff_headers(stack, await make_staff(world.community, name))
    headers[OUTSIDER] = await staff_headers(stack, await make_staff(other.community, _A, _P, _G))
    newcomer = await new_resident(stack)
    resident = await new_resident(stack)
    home = world.rooms[0]
    resident_row = await Resident.get(openid=resident.openid)
    await Membership.create(
        resident=resident_row,
        room=home,
        community=world.community,
        role=MembershipRole.OWNER,
        state=MembershipState.APPROVED,
    )
    headers[NEWCOMER] = newcomer.headers
    headers[RESIDENT] = resident.headers
    spare = await make_staff(other.community, _G)
    wechat = FakeWeChatControl(stack.wechat_url)
    yield Ctx(
        stack=stack,
        world=world,
        other=other,
        headers=headers,
        resident_id=resident_row.id,
        newcomer_id=(await Resident.get(openid=newcomer.openid)).id,
        home=home,
        wechat=wechat,
        staff_login=(spare.username, STAFF_PASSWORD),
    )
    await wechat.aclose()
    await newcomer.aclose()
    await resident.aclose()


async def fingerprint() -> dict[str, Any]:
    """What a refused call must not change."""
    out: dict[str, Any] = {
        f"membership.{s.value}": await Membership.filter(state=s).count() for s in MembershipState
    }
    out.update(
        buildings=await Building.all().count(),
        units=await Unit.all().count(),
        rooms=await Room.all().count(),
        residents=await Resident.all().count(),
        blocked=await ResidentBlock.all().count(),
        phones=await Resident.exclude(phone=None).count(),
        revoked_tokens=await RefreshToken.exclude(revoked_at=None).count(),
        audit=await AuditLog.all().count(),
    )
    return out


# A refusal's code by status. Media routes refuse a bad viewing ticket as `ticket_invalid`;
# with no media server configured (the embedded default) live view answers 503.
DENIAL_CODES = {
    401: {"unauthorized"},
    403: {"forbidden", "ticket_invalid"},
    404: {"not_found"},
    503: {"no_media_server"},
}
CASES = [(key, role) for key in TABLE for role in ROLES]


@pytest.mark.parametrize(("key", "role"), CASES, ids=[f"{m} {p} as {r}" for (m, p), r in CASES])
async def test_matrix(ctx: Ctx, key: tuple[str, str], role: str) -> None:
    method, template = key
    rule = TABLE[key]
    call = await rule.prepare(ctx, role)
    path = template.format(**call.params)
    expected = rule.expected(role)
    refused = expected >= 400 and role not in rule.allow
    before = await fingerprint() if refused else None

    r = await ctx.stack.client.request(
        method,
        path,
        headers=ctx.headers[role],
        params=call.query or None,
        json=call.json if call.files is None else None,
        files=call.files,
    )

    assert r.status_code == expected, f"{method} {path} as {role}: {r.status_code} {r.text}"
    if refused:
        assert r.json()["error"]["code"] in DENIAL_CODES[expected], r.text
        assert await fingerprint() == before, "a refused call changed state"
    elif rule.verify is not None:  # (an allowed role may get a 4xx past the check: verify says)
        await rule.verify(ctx, call, role, r)
