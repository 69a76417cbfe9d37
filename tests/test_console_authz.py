"""Every console route, called as every role through a real console session; every
form also without its CSRF token. The table is in tests/authz_console.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from anxin.settings import Settings
from models import (
    AccessCard,
    Alarm,
    AuditLog,
    BlocklistEntry,
    Building,
    Community,
    Device,
    FaceEnrollment,
    Membership,
    OutboxEvent,
    PoliceAgreement,
    PoliceAlert,
    Resident,
    ResidentBlock,
    Room,
    StaffAccount,
    StaffRole,
    StaffRoleName,
    TraceExport,
    TraceQuery,
    Unit,
    VisitorPass,
)
from tests.authz_console import (
    ADMIN,
    ANONYMOUS,
    OPERATOR,
    OUTSIDER,
    PENDING,
    PUBLIC,
    ROLES,
    TABLE,
    Ctx,
)
from tests.console_helpers import anonymous_client, sign_in
from tests.helpers import make_staff, make_world
from tests.stack import Stack

_A, _P, _G = StaffRoleName.ADMIN, StaffRoleName.APPROVER, StaffRoleName.GUARD


def _console_routes() -> set[tuple[str, str]]:
    from boot.roles import build_app

    app = build_app(Settings())
    found = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/console"):
            found |= {(m, route.path) for m in route.methods if m != "HEAD"}
    # Included routers may sit behind wrappers: the console's own routers are the source.
    from console.auth_pages import router as auth_router
    from console.pages import routers

    for router in [auth_router, *routers()]:
        for route in router.routes:
            if isinstance(route, APIRoute):
                found |= {(m, route.path) for m in route.methods if m != "HEAD"}
    assert found, "no console routes found"
    return found


ROUTES = _console_routes()


@pytest.mark.parametrize("key", sorted(ROUTES), ids=" ".join)
def test_every_console_route_is_in_the_matrix(key: tuple[str, str]) -> None:
    if key in PENDING:
        pytest.xfail(f"{' '.join(key)}: entry pending in tests/authz_console.py")
    assert key in TABLE or key in PUBLIC, f"{' '.join(key)}: no entry in tests/authz_console.py"


def test_no_stale_entries() -> None:
    assert not (set(TABLE) - ROUTES), set(TABLE) - ROUTES
    assert not (PENDING & set(TABLE)), "routes both pending and in TABLE: drop them from PENDING"


@pytest.fixture(scope="module")
async def ctx(stack: Stack) -> AsyncIterator[tuple[Ctx, dict[str, tuple[httpx.AsyncClient, str]]]]:
    world = await make_world(buildings=1, units=2, rooms_per_unit=2)
    other = await make_world(buildings=1, units=1, rooms_per_unit=1)
    staff = {
        "admin": await make_staff(world.community, _A),
        "approver": await make_staff(world.community, _P),
        "guard": await make_staff(world.community, _G),
        "security": await make_staff(world.community, StaffRoleName.SECURITY),
        OUTSIDER: await make_staff(other.community, _A, _P, _G),
        OPERATOR: await make_staff(other.community),
    }
    staff[OPERATOR].is_operator = True
    await staff[OPERATOR].save(update_fields=["is_operator"])
    clients: dict[str, tuple[httpx.AsyncClient, str]] = {}
    for role in ROLES:
        client = anonymous_client(stack)
        csrf = "" if role == ANONYMOUS else await sign_in(client, staff[role].username)
        clients[role] = (client, csrf)
    # The matrix runs for minutes: its devices must not go offline meanwhile (an offline
    # alarm and its notices would look like a refused call's change).
    offline_after = stack.settings.device_offline_after_s
    stack.settings.device_offline_after_s = 24 * 3600
    yield Ctx(stack, world, other, staff), clients
    stack.settings.device_offline_after_s = offline_after
    for client, _ in clients.values():
        await client.aclose()


# What a refused call must not change: the fields people act on, not those that move by
# themselves (device heartbeats, the outbox's delivery state).
WATCHED: dict[Any, tuple[str, ...]] = {
    Membership: ("id", "state"),
    FaceEnrollment: ("id", "state"),
    Alarm: ("id", "state", "note"),
    AccessCard: ("id", "active", "resident_id"),
    BlocklistEntry: ("id", "active"),
    VisitorPass: ("id", "state"),
    Device: ("id", "status", "credential_version", "name"),
    StaffAccount: ("id", "is_active", "password_hash"),
    StaffRole: ("id", "staff_id", "community_id", "role"),
    Community: ("id",),
    Building: ("id",),
    Unit: ("id",),
    Room: ("id",),
    Resident: ("id", "name"),
    ResidentBlock: ("id", "resident_id", "community_id"),
    OutboxEvent: ("id", "event_type"),  # the type says where an unexpected row came from
    PoliceAgreement: ("id", "state"),
    PoliceAlert: ("id", "state", "note"),
    TraceQuery: ("id",),
    TraceExport: ("id", "state", "downloaded_at"),
}


async def fingerprint(ctx: Ctx) -> dict[str, Any]:
    """The watched rows of the matrix's two communities (rows of other tests' communities
    move meanwhile: their devices go offline, their jobs write outbox rows), and every row
    of the tables that belong to no community."""
    communities = (ctx.world.community.id, ctx.other.community.id)
    out: dict[str, Any] = {}
    for model, fields in WATCHED.items():
        meta = model._meta
        scoped = "community" in meta.fk_fields or "community_id" in meta.fields_map
        rows = model.filter(community_id__in=communities) if scoped else model.all()
        out[model.__name__] = sorted(await rows.values_list(*fields))
    out["audit"] = (
        await AuditLog.filter(community_id__in=communities)
        .exclude(action__in=("photo.viewed", "snapshot.viewed"))
        .count()
    )
    return out


async def _call(
    client: httpx.AsyncClient, method: str, path: str, form: dict[str, Any], files: Any
) -> httpx.Response:
    if method == "GET":
        return await client.get(path, params=form or None)
    return await client.post(path, data=form, files=files)


CASES = [(key, role) for key in TABLE for role in ROLES]


@pytest.mark.parametrize(("key", "role"), CASES, ids=[f"{m} {p} as {r}" for (m, p), r in CASES])
async def test_console_matrix(ctx: Any, key: tuple[str, str], role: str) -> None:
    world_ctx, clients = ctx
    method, template = key
    rule = TABLE[key]
    expected = rule.expected(method, role)
    if rule.stream and role in rule.allow:
        pytest.skip("an allowed event stream does not end (tests/browser covers it)")
    call = await rule.prepare(world_ctx, role)
    path = template.format(**call.params)
    client, csrf = clients[role]
    form = dict(call.form)
    if method == "POST" and csrf:
        form["csrf_token"] = csrf
    refused = role not in rule.allow
    before = await fingerprint(world_ctx) if refused and method == "POST" else None
    r = await _call(client, method, path, form, call.files)
    assert r.status_code == expected, f"{method} {path} as {role}: {r.status_code} {r.text[:300]}"
    if refused:
        assert "content-security-policy" in r.headers or r.status_code == 303
        if before is not None:
            assert await fingerprint(world_ctx) == before, "a refused call changed state"
    elif rule.verify is not None:
        await rule.verify(world_ctx, call, role, r)


POSTS = [key for key in TABLE if key[0] == "POST"]


@pytest.mark.parametrize("key", POSTS, ids=[p for _, p in POSTS])
async def test_a_form_without_its_csrf_token_changes_nothing(
    ctx: Any, key: tuple[str, str]
) -> None:
    world_ctx, clients = ctx
    rule = TABLE[key]
    role = sorted(rule.allow)[0]
    call = await rule.prepare(world_ctx, role)
    client, _ = clients[role]
    path = key[1].format(**call.params)
    before = await fingerprint(world_ctx)
    for token in (None, "forged-" + "x" * 40):
        form = dict(call.form)
        if token:
            form["csrf_token"] = token
        r = await client.post(path, data=form, files=call.files)
        assert r.status_code == 403, f"{path} without CSRF: {r.status_code}"
        assert "页面已过期" in r.text or "expired" in r.text
    assert await fingerprint(world_ctx) == before, "a form without its CSRF token changed state"


PENDING_ROUTES = sorted(PENDING & ROUTES)


@pytest.mark.parametrize("key", PENDING_ROUTES, ids=[" ".join(k) for k in PENDING_ROUTES])
async def test_pending_routes_keep_the_console_rules(ctx: Any, key: tuple[str, str]) -> None:
    """Routes without their own entry yet: what holds for every console route."""
    import re

    world_ctx, clients = ctx
    method, template = key
    community_page = template.startswith("/console/c/{cid}")

    def path(cid: int) -> str:
        return re.sub(r"\{[a-z_]+\}", "2147483647", template.replace("{cid}", str(cid)))

    here = path(world_ctx.world.community.id)
    anonymous, _ = clients[ANONYMOUS]
    r = await _call(anonymous, method, here, {}, None)
    assert r.status_code == (303 if method == "GET" else 401), r.status_code
    if community_page:
        outsider, csrf = clients[OUTSIDER]
        r = await _call(
            outsider, method, here, {"csrf_token": csrf} if method == "POST" else {}, None
        )
        assert r.status_code == 404, f"{here} as another community's staff: {r.status_code}"
    if method == "POST":
        before = await fingerprint(world_ctx)
        role = ADMIN if community_page else OPERATOR
        client, _ = clients[role]
        r = await client.post(here, data={})
        assert r.status_code == 403, f"{here} without CSRF: {r.status_code}"
        assert await fingerprint(world_ctx) == before
