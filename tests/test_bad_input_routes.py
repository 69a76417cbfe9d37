"""Every route, built from the app's route table, against bad input: integers past 64 bits,
negative and zero ids, strings for numbers, null, bare numbers, deeply nested JSON, no
body, the wrong content type. None may answer 500; an out-of-range id is never a
success. A route added later is covered without touching this file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from anxin.settings import Settings
from models import StaffRoleName
from tests.helpers import World, approved_resident, make_staff, make_world, staff_headers
from tests.route_table import RouteInfo, int_fields, minimal_body, route_table
from tests.stack import Stack, configure_test_secrets


def _routes() -> list[RouteInfo]:
    from boot.roles import build_app

    configure_test_secrets()
    return route_table(build_app(Settings()))


ROUTES = _routes()
MISSING = 2**31 - 1  # a well-formed id nobody has
HUGE_INTS: list[Any] = [2**64, 2**63, -(2**63) - 1, 10**30]
BAD_INTS: list[Any] = [*HUGE_INTS, -1, 0, "abc", "1.5", "1e3"]
DEEP = 100_000  # past any JSON parser's recursion


def test_the_route_table_is_read() -> None:
    ids = {r.id for r in ROUTES}
    assert len(ROUTES) > 80
    # The ones named in the probe's report, and the hidden device routes.
    for needed in (
        "POST /api/v1/staff/communities/{community_id}/devices",
        "GET /api/v1/staff/communities/{community_id}/access-events",
        "POST /api/v1/staff/alarms/{alarm_id}",
        "POST /iclock/cdata",
    ):
        assert needed in ids


@dataclass
class Env:
    world: World
    principals: dict[str, dict[str, str]]
    fill: dict[str, int]


@pytest.fixture(scope="module")
async def env(stack: Stack) -> AsyncIterator[Env]:
    world = await make_world(units=1, rooms_per_unit=2)
    admin = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin)
    fill = {
        "community_id": world.community.id,
        "cid": world.community.id,
        "building_id": world.buildings[0].id,
        "unit_id": world.units[0].id,
        "room_id": world.rooms[0].id,
    }
    yield Env(world, {"staff": admin, "resident": resident.headers, "nobody": {}}, fill)
    await resident.aclose()


def _path(route: RouteInfo, env: Env, override: dict[str, Any] | None = None) -> str:
    values: dict[str, Any] = {}
    for p in route.path_params:
        values[p.name] = env.fill.get(p.name, MISSING) if p.is_int else "x"
    values.update(override or {})
    return route.path.format(**{k: str(v) for k, v in values.items()})


def _check(route: RouteInfo, what: str, r: httpx.Response, *, never_ok: bool) -> None:
    assert r.status_code < 500, f"{route.id} {what}: {r.status_code} {r.text[:300]}"
    if never_ok:
        assert not 200 <= r.status_code < 300, f"{route.id} {what} was accepted: {r.text[:300]}"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


RAW_BODIES: dict[str, tuple[bytes | None, str]] = {
    "null": (b"null", "application/json"),
    "five": (b"5", "application/json"),
    "string": (b'"x"', "application/json"),
    "list": (b"[]", "application/json"),
    "nested-list": (_nested(DEEP), "application/json"),
    "nested-object": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "application/json"),
    "not-json": (b"{not json", "application/json"),
    "no-body": (None, "application/json"),
    "text-plain": (b'{"a": 1}', "text/plain"),
    "huge-number": (b'{"id": ' + b"9" * 5000 + b"}", "application/json"),
}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
async def test_bad_input_never_500(stack: Stack, env: Env, route: RouteInfo) -> None:
    client = stack.client
    # Every kind of caller: the route's own audience gets past authentication and so
    # reaches validation and the handler.
    for who, headers in env.principals.items():
        # 1. each integer path parameter out of range or not an integer
        for p in route.path_params:
            values = BAD_INTS if p.is_int else ["x" * 600, "..", "%25", "null"]
            for bad in values:
                r = await client.request(
                    route.method, _path(route, env, {p.name: bad}), headers=headers
                )
                _check(route, f"{who} path {p.name}={str(bad)[:20]}", r, never_ok=p.is_int)
                if p.is_int and bad in HUGE_INTS and who != "nobody":
                    # Refused as input (or, for pages, sent to the login): never a lookup.
                    ok = r.status_code in (401, 403, 404, 405, 422) or r.is_redirect
                    assert ok, (route.id, r.status_code, r.text[:200])
        # 2. each query parameter the same way
        for q in route.query_params:
            values = (
                BAD_INTS
                if q.is_int
                else ["x" * 5000, "", "2030-13-45", "2030-01-01T10:00", "2030-01-01"]
            )
            for bad in values:
                r = await client.request(
                    route.method,
                    _path(route, env),
                    params={q.name: str(bad)},
                    headers=headers,
                )
                _check(route, f"{who} query {q.name}={str(bad)[:20]}", r, never_ok=bad in HUGE_INTS)
        # 3. bodies that are not what the route takes
        if route.method in ("POST", "PUT", "PATCH", "DELETE"):
            for name, (raw, ctype) in RAW_BODIES.items():
                r = await client.request(
                    route.method,
                    _path(route, env),
                    content=raw,
                    headers={**headers, "Content-Type": ctype},
                )
                # A route that takes no body may ignore it; one that takes JSON may not.
                _check(route, f"{who} body {name}", r, never_ok=route.body_kind == "json")
        # 4. a body that is valid but for one integer beyond 64 bits (reaches the handler
        # when the model forgot a bound)
        for field, is_list in int_fields(route.body):
            for bad in HUGE_INTS:
                body = {**minimal_body(route.body), field: [bad] if is_list else bad}
                r = await client.request(
                    route.method,
                    _path(route, env),
                    content=json.dumps(body),
                    headers={**headers, "Content-Type": "application/json"},
                )
                _check(route, f"{who} body {field}={bad}", r, never_ok=True)


async def test_http_push_uploads_that_are_not_messages() -> None:
    """A signed-in terminal posting 5, null, nesting past the parser or garbage: each line
    is counted as malformed and the answer is OK, never a 500 (the device would resend
    for ever)."""
    from fastapi import FastAPI

    from device_bridge.http_push import HttpDeviceLink, HttpPushTransport
    from device_bridge.http_push_routes import http_push_router
    from device_bridge.signing import device_key

    secret = "bad-input-secret"
    server = HttpPushTransport(key_for={"zk-bad": device_key(secret)}.get, poll_wait_s=0.1)
    app = FastAPI()
    app.include_router(http_push_router(server))
    transport = httpx.ASGITransport(app=app)  # raises what the app raises: a 500 fails here
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        link = HttpDeviceLink("http://t", "zk-bad", secret, client=client)
        for body in (
            b"5",
            b"null",
            b'"text"',
            b"[]",
            _nested(20_000),
            b'{"v": 1, "a": ' + _nested(20_000) + b"}",
            b"\xff\xfe",
        ):
            before = server.stats["malformed"]
            for name in ("cdata", "devicecmd"):
                params = {"table": "ANXIN"} if name == "cdata" else None
                answer = await link._req("POST", name, body=body, params=params)  # noqa: SLF001
                assert answer.startswith("OK"), (body[:20], answer)
            assert server.stats["malformed"] >= before + 1, body[:20]
    await server.stop()
