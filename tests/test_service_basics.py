"""Health and readiness, request ids, the one error format, Chinese first and English on ask."""

from __future__ import annotations

import re

import httpx
import pytest

from anxin.runtime import Key
from models import AuditLog, StaffRoleName
from tests.helpers import make_staff, make_world, staff_headers
from tests.stack import Stack

ERROR_KEYS = {"code", "message", "message_zh", "message_en", "request_id", "details"}


async def test_healthz(stack: Stack) -> None:
    r = await stack.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["x-request-id"]


async def test_readyz_checks_database_and_redis(stack: Stack) -> None:
    r = await stack.client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["checks"]["database"] == "ok"
    if stack.backend == "postgres":
        assert body["checks"]["redis"] == "ok"
    else:
        assert "redis" not in body["checks"]


async def test_readyz_reports_a_service_that_is_not_ready(stack: Stack) -> None:
    class Stalled:
        def ready(self) -> bool:
            return False

    stalled: Key[Stalled] = Key("stalled_for_test")
    stack.runtime.provide(stalled, Stalled())
    try:
        r = await stack.client.get("/readyz")
    finally:
        stack.runtime.remove(stalled)
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"
    assert r.json()["checks"]["stalled_for_test"] == "not ready"


async def test_request_id_echoed_in_header_and_error_body(stack: Stack) -> None:
    r = await stack.client.get("/api/v1/me", headers={"X-Request-ID": "trace-42.a_b"})
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "trace-42.a_b"
    assert r.json()["error"]["request_id"] == "trace-42.a_b"


@pytest.mark.parametrize("incoming", [None, "", "has spaces", "x" * 65, "<script>", "a/b"])
async def test_unsafe_or_missing_request_id_is_replaced(stack: Stack, incoming: str | None) -> None:
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    r = await stack.client.get("/api/v1/me", headers=headers)
    rid = r.headers["x-request-id"]
    assert rid != incoming and re.fullmatch(r"[0-9a-f]{16}", rid)
    assert r.json()["error"]["request_id"] == rid


async def test_every_request_gets_its_own_id(stack: Stack) -> None:
    ids = {(await stack.client.get("/healthz")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


async def test_audit_rows_carry_the_request_id(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    r = await stack.client.post(
        f"/api/v1/staff/communities/{world.community.id}/buildings",
        json={"name": "审计楼"},
        headers={**h, "X-Request-ID": "audit-trace-1"},
    )
    assert r.status_code == 201
    row = await AuditLog.get(action="building.created", target_id=str(r.json()["id"]))
    assert row.request_id == "audit-trace-1" and row.community_id == world.community.id


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        (None, "zh"),
        ("zh-CN,zh;q=0.9", "zh"),
        ("en", "en"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("EN-gb", "en"),
        ("fr-FR", "zh"),
    ],
)
async def test_error_language(stack: Stack, accept: str | None, lang: str) -> None:
    headers = {} if accept is None else {"Accept-Language": accept}
    r = await stack.client.get("/api/v1/me", headers=headers)
    err = r.json()["error"]
    assert set(err) == ERROR_KEYS
    assert err["message_zh"] == "请先登录" and err["message_en"] == "login required"
    assert err["message"] == (err["message_en"] if lang == "en" else err["message_zh"])


async def test_unknown_route_and_wrong_method(stack: Stack) -> None:
    r = await stack.client.get("/api/v1/no-such-thing", headers={"Accept-Language": "en"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert set(err) == ERROR_KEYS and err["code"] == "not_found" and err["message"] == "not found"
    r = await stack.client.put("/api/v1/me")  # GET and DELETE exist, PUT does not
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.json()["error"]["message"] == "不支持该请求方法"


async def test_validation_error_format(stack: Stack) -> None:
    r = await stack.client.post(
        "/api/v1/auth/staff/login", json={"username": "x"}, headers={"X-Request-ID": "v-1"}
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert set(err) == ERROR_KEYS
    assert err["code"] == "validation_error" and err["request_id"] == "v-1"
    assert err["message"] == "请求参数有误"
    assert [d["loc"] for d in err["details"]] == [["body", "password"]]
    assert err["details"][0]["type"] == "missing"


async def test_unauthorized_says_how_to_authenticate(stack: Stack) -> None:
    r = await stack.client.get("/api/v1/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_nul_in_query_is_a_bad_request(stack: Stack) -> None:
    r = await stack.client.get(
        "/api/v1/communities/1/rooms?building=%00&unit=1", headers={"X-Request-ID": "nul-1"}
    )
    assert r.status_code == 400
    assert r.headers["x-request-id"] == "nul-1"
    err = r.json()["error"]
    assert set(err) == ERROR_KEYS and err["code"] == "bad_request" and err["request_id"] == "nul-1"


async def test_internal_error_keeps_format_and_request_id(stack: Stack) -> None:
    async def boom() -> None:
        raise RuntimeError("something broke inside")

    stack.app.add_api_route("/__test__/boom", boom)
    route = stack.app.router.routes[-1]
    transport = httpx.ASGITransport(app=stack.app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://anxin.test") as c:
            r = await c.get("/__test__/boom", headers={"X-Request-ID": "boom-1"})
    finally:
        stack.app.router.routes.remove(route)
    assert r.status_code == 500
    err = r.json()["error"]
    assert set(err) == ERROR_KEYS and err["code"] == "internal_error"
    assert "something broke" not in r.text  # internals stay in the log
    assert err["request_id"] == "boom-1"
    assert r.headers["x-request-id"] == "boom-1"


async def test_openapi_lists_the_api(stack: Stack) -> None:
    r = await stack.client.get("/openapi.json")
    assert r.status_code == 200
    assert "/api/v1/auth/wechat/login" in r.json()["paths"]
