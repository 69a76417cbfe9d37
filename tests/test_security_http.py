"""HTTP-level defences: proxy headers believed only from configured proxies, WeChat login
rate limits, security headers on every answer, and a 500 in the access log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from anxin.clock import clock
from api.security import client_from_forwarded, parse_networks
from boot.cli import uvicorn_config
from miniprogram_mock.client import MiniProgram
from tests.helpers import make_staff, make_world
from tests.stack import Stack

# --- X-Forwarded-For -----------------------------------------------------------------


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    none = parse_networks("")
    proxies = parse_networks("10.0.0.0/8, 127.0.0.1")
    assert client_from_forwarded("127.0.0.1", "1.2.3.4", none) == "127.0.0.1"
    assert client_from_forwarded("8.8.8.8", "1.2.3.4", proxies) == "8.8.8.8"  # not a proxy
    assert client_from_forwarded("127.0.0.1", "1.2.3.4", proxies) == "1.2.3.4"
    # The client can write anything on the left; the right-most untrusted hop counts.
    assert client_from_forwarded("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.9", proxies) == "1.2.3.4"
    assert client_from_forwarded("10.0.0.2", "garbage", proxies) == "10.0.0.2"
    assert client_from_forwarded("10.0.0.2", "[2001:db8::1]:443", proxies) == "2001:db8::1"


@contextlib.asynccontextmanager
async def served(stack: Stack) -> AsyncIterator[str]:
    """The stack's app behind a real uvicorn on loopback, configured as `anxin serve`
    configures it (so uvicorn's own proxy-header handling is what is tested)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn_config(stack.app, "127.0.0.1", port)
    config.lifespan = "off"  # the stack already started the app
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_rotating_forwarded_for_does_not_buy_login_attempts(stack: Stack) -> None:
    from domain.identity.service import STAFF_LOGIN_MAX_FAILURES

    world = await make_world(units=1, rooms_per_unit=1)
    staff = await make_staff(world.community)
    async with served(stack) as url, httpx.AsyncClient(base_url=url) as client:
        codes = []
        for i in range(STAFF_LOGIN_MAX_FAILURES + 2):
            r = await client.post(
                "/api/v1/auth/staff/login",
                json={"username": staff.username, "password": f"wrong-{i}"},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
            )
            codes.append(r.status_code)
    assert codes[:STAFF_LOGIN_MAX_FAILURES] == [401] * STAFF_LOGIN_MAX_FAILURES
    assert codes[STAFF_LOGIN_MAX_FAILURES:] == [429, 429], codes


# --- WeChat login rate limit -------------------------------------------------------


@contextlib.asynccontextmanager
async def limits(stack: Stack, per_ip: int, overall: int):  # type: ignore[no-untyped-def]
    # A window opened by another test (maybe under a moved clock) is not this test's.
    await stack.runtime.kv.delete("wechat-login:all")
    s = stack.settings
    old = (s.wechat_login_per_ip_per_minute, s.wechat_login_global_per_minute)
    s.wechat_login_per_ip_per_minute, s.wechat_login_global_per_minute = per_ip, overall
    try:
        yield
    finally:
        s.wechat_login_per_ip_per_minute, s.wechat_login_global_per_minute = old


def client_at(stack: Stack, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=stack.app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://anxin.test")


async def wechat_calls(stack: Stack) -> int:
    r = await stack.client.get(f"{stack.wechat_url}/__mock__/stats")
    return int(r.json().get("/sns/jscode2session", 0))


async def test_wechat_login_is_limited_per_address(stack: Stack) -> None:
    ip = f"198.51.100.{int(clock.time()) % 200 + 1}"
    async with (
        client_at(stack, ip) as client,
        client_at(stack, "192.0.2.77") as other,
        limits(stack, per_ip=3, overall=1_000_000),
    ):
        for _ in range(3):
            r = await client.post("/api/v1/auth/wechat/login", json={"js_code": "bad"})
            assert r.status_code == 401, r.text
        before = await wechat_calls(stack)
        r = await client.post("/api/v1/auth/wechat/login", json={"js_code": "bad"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "login_rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert await wechat_calls(stack) == before  # refused before calling WeChat
        # Another address is not affected, and a real login there works.
        app = MiniProgram(other, stack.wechat_url)
        await app.login()
        assert app.access_token
        await app.aclose()


async def test_wechat_login_has_a_global_limit(stack: Stack) -> None:
    async with (
        client_at(stack, "192.0.2.200") as client,
        limits(stack, per_ip=1_000_000, overall=0),
    ):
        r = await client.post("/api/v1/auth/wechat/login", json={"js_code": "bad"})
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60


async def test_retry_after_rounds_up(stack: Stack) -> None:
    if stack.backend != "sqlite":
        pytest.skip("moves the service clock, which only the in-memory counters follow")
    ip = "198.51.100.250"
    async with client_at(stack, ip) as client, limits(stack, per_ip=1, overall=1_000_000):
        await client.post("/api/v1/auth/wechat/login", json={"js_code": "bad"})
        clock.advance(0.5)
        r = await client.post("/api/v1/auth/wechat/login", json={"js_code": "bad"})
        assert r.status_code == 429 and r.headers["Retry-After"] == "60"  # 59.5 -> 60
        clock.advance(60)  # waiting exactly what we were told is enough
        r = await client.post("/api/v1/auth/wechat/login", json={"js_code": "bad"})
        assert r.status_code == 401


# --- security headers ----------------------------------------------------------------


async def test_every_answer_carries_the_security_headers(stack: Stack) -> None:
    for r in (
        await stack.client.get("/healthz"),
        await stack.client.get("/api/v1/me"),  # 401
        await stack.client.get("/no/such/route"),  # 404
        await stack.client.get("/api/v1/communities/1/rooms?building=%00&unit=1"),  # 400
    ):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in r.headers["content-security-policy"]
    r = await stack.client.get("/docs")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers  # a page sets its own


async def test_authenticated_answers_are_not_cached(stack: Stack) -> None:
    world = await make_world(units=1, rooms_per_unit=1)
    from tests.helpers import staff_headers

    h = await staff_headers(stack, await make_staff(world.community))
    r = await stack.client.get("/api/v1/me", headers=h)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"


# --- a 500 in the access log -----------------------------------------------------------


async def test_a_500_is_in_the_access_log_with_its_request_id(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("broken on purpose")

    stack.app.add_api_route("/__test__/boom500", boom)
    route = stack.app.router.routes[-1]
    try:
        with caplog.at_level(logging.INFO, logger="anxin.http"):
            r = await stack.client.get("/__test__/boom500", headers={"X-Request-ID": "five-oh-oh"})
    finally:
        stack.app.router.routes.remove(route)
    assert r.status_code == 500 and r.json()["error"]["request_id"] == "five-oh-oh"
    assert r.headers["x-request-id"] == "five-oh-oh"
    assert r.headers["x-content-type-options"] == "nosniff"
    access = [
        rec
        for rec in caplog.records
        if rec.name == "anxin.http" and getattr(rec, "path", "") == "/__test__/boom500"
    ]
    assert [getattr(rec, "status", None) for rec in access] == [500]
    assert getattr(access[0], "request_id", None) == "five-oh-oh"
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info is not None
    assert getattr(errors[0], "request_id", None) == "five-oh-oh"
