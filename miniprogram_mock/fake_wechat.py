"""A fake of the WeChat server API, speaking WeChat's real paths, bodies and errcodes.

WeChat surface (HTTP 200 with `errcode` in the body, as WeChat does):
  GET  /sns/jscode2session            GET  /cgi-bin/token       POST /cgi-bin/stable_token
  POST /wxa/business/getuserphonenumber?access_token=...
  POST /cgi-bin/message/subscribe/send?access_token=...
Control surface for tests and the demo, under /__mock__/ (never part of WeChat).

Run on loopback:  `async with run_fake_wechat(port=0) as base_url: ...`
or from a shell:  `python -m miniprogram_mock.fake_wechat --port 8765`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal
from urllib.parse import parse_qs

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from anxin.clock import clock
from miniprogram_mock.wechat_state import FakeWeChat, Fault, error

JSCODE2SESSION = "/sns/jscode2session"
TOKEN = "/cgi-bin/token"
STABLE_TOKEN = "/cgi-bin/stable_token"
PHONE = "/wxa/business/getuserphonenumber"
SUBSCRIBE_SEND = "/cgi-bin/message/subscribe/send"
ENDPOINTS = (JSCODE2SESSION, TOKEN, STABLE_TOKEN, PHONE, SUBSCRIBE_SEND)


def _reply(body: dict[str, Any], content_type: str = "application/json") -> Response:
    # WeChat answers errors with HTTP 200; jscode2session even says text/plain.
    compact = json.dumps(body, ensure_ascii=False, separators=(",", ":"))  # as WeChat sends it
    return Response(compact, 200, media_type=content_type)


async def _fault_reply(fake: FakeWeChat, endpoint: str) -> Response | None:
    hit = fake.before_call(endpoint)
    if hit is None:
        return None
    if isinstance(hit, dict):  # minute quota exceeded
        return _reply(hit)
    fault: Fault = hit
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)  # real time: lets tests exercise client timeouts
    if fault.http_status >= 500:
        html = f"<html><body><h1>{fault.http_status}</h1>nginx</body></html>"
        return Response(html, fault.http_status, media_type="text/html")
    return _reply(error(fault.errcode))


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _wechat_router(fake: FakeWeChat) -> APIRouter:
    r = APIRouter()

    @r.get(JSCODE2SESSION)
    async def jscode2session(request: Request) -> Response:
        if (f := await _fault_reply(fake, JSCODE2SESSION)) is not None:
            return f
        q = request.query_params
        bad = fake.check_app(q.get("appid"), q.get("secret"))
        if bad is None and q.get("grant_type") != "authorization_code":
            bad = error(40002)
        if bad is None and not q.get("js_code"):
            bad = error(41008)
        return _reply(bad or fake.jscode2session(q["js_code"]), "text/plain")

    @r.get(TOKEN)
    async def token(request: Request) -> Response:
        if (f := await _fault_reply(fake, TOKEN)) is not None:
            return f
        q = request.query_params
        bad = fake.check_app(q.get("appid"), q.get("secret"))
        if bad is None and q.get("grant_type") != "client_credential":
            bad = error(40002)
        return _reply(bad or fake.get_token())

    @r.post(STABLE_TOKEN)
    async def stable_token(request: Request) -> Response:
        if (f := await _fault_reply(fake, STABLE_TOKEN)) is not None:
            return f
        body = await _json_body(request)
        if body is None:
            return _reply(error(47001))
        bad = fake.check_app(body.get("appid"), body.get("secret"))
        if bad is None and body.get("grant_type") != "client_credential":
            bad = error(40002)
        return _reply(bad or fake.stable_token(bool(body.get("force_refresh", False))))

    @r.post(PHONE)
    async def phone(request: Request) -> Response:
        if (f := await _fault_reply(fake, PHONE)) is not None:
            return f
        bad = fake.check_token(request.query_params.get("access_token"))
        if bad:
            return _reply(bad)
        body = await _json_body(request)
        return _reply(error(47001) if body is None else fake.get_phone_number(body.get("code")))

    return r


class _SubscribeSend:
    """POST /cgi-bin/message/subscribe/send in plain ASGI, ahead of FastAPI's routing.

    A notice to a whole community is one such call per resident (WeChat has no batch
    API), and the fake must keep up with the dispatcher: FastAPI's routing, request
    object and dependency solving cost several times the checks themselves. Same checks,
    same answers as WeChat: faults and quotas, then the access token, then the body."""

    def __init__(self, app: FastAPI, fake: FakeWeChat) -> None:
        self.app = app
        self.fake = fake
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != SUBSCRIBE_SEND:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await Response("", 405, headers={"Allow": "POST"})(scope, receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        await (await self.answer(scope["query_string"], raw))(scope, receive, send)

    async def answer(self, query_string: bytes, raw: bytes) -> Response:
        if (f := await _fault_reply(self.fake, SUBSCRIBE_SEND)) is not None:
            return f
        token = parse_qs(query_string.decode("latin-1")).get("access_token", [None])[-1]
        bad = self.fake.check_token(token)
        if bad:
            return _reply(bad)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _reply(error(47001))
        return _reply(self.fake.send_subscribe(body))


class LoginIn(BaseModel):
    openid: str | None = None  # omitted: a new user with a fresh openid
    unionid: str | None = None


class PhoneCodeIn(BaseModel):
    phone_number: str
    country_code: str = "86"


class SubscribeIn(BaseModel):
    openid: str
    template_id: str
    action: Literal["accept", "reject"] = "accept"
    count: int = Field(1, ge=1)


class EncryptedDataIn(BaseModel):
    openid: str
    data: dict[str, Any] | None = None  # any open-data JSON; default: a phone payload
    phone_number: str = "13800138000"
    appid: str | None = None  # another appid in the watermark, to test the check


class FaultIn(BaseModel):
    endpoint: str  # a WeChat path, e.g. "/cgi-bin/message/subscribe/send"
    errcode: int = -1
    count: int = Field(1, ge=1)
    http_status: int = 200  # >= 500: an nginx error page instead of JSON
    delay_s: float = Field(0.0, ge=0, le=30)


class LimitIn(BaseModel):
    endpoint: str
    per_minute: int | None = None  # None removes the limit


class TemplateIn(BaseModel):
    template_id: str
    keys: list[str]


class AdvanceIn(BaseModel):
    seconds: float


def _control_router(fake: FakeWeChat) -> APIRouter:
    r = APIRouter(prefix="/__mock__")

    def known(endpoint: str) -> str:
        if endpoint not in ENDPOINTS:
            raise HTTPException(422, f"unknown endpoint; one of {list(ENDPOINTS)}")
        return endpoint

    @r.post("/login")
    async def login(body: LoginIn) -> dict[str, Any]:
        """wx.login(): a one-time js_code for this user, valid 5 minutes."""
        return fake.wx_login(body.openid, body.unionid)

    @r.post("/phone_code")
    async def phone_code(body: PhoneCodeIn) -> dict[str, Any]:
        """The getPhoneNumber button: a one-time code bound to a phone number."""
        return fake.phone_code(body.phone_number, body.country_code)

    @r.post("/encrypted_data")
    async def encrypted_data(body: EncryptedDataIn) -> dict[str, str]:
        """Legacy encryptedData + iv, sealed with the user's current session_key."""
        data = body.data or {
            "phoneNumber": body.phone_number,
            "purePhoneNumber": body.phone_number,
            "countryCode": "86",
        }
        try:
            return fake.encrypted_data(body.openid, data, body.appid)
        except KeyError:
            raise HTTPException(409, "user has no session; log in first") from None

    @r.post("/subscribe")
    async def subscribe(body: SubscribeIn) -> dict[str, Any]:
        """wx.requestSubscribeMessage result: accept adds one-time quota, reject refuses."""
        return fake.subscribe(body.openid, body.template_id, body.action, body.count)

    @r.get("/subscriptions")
    async def subscriptions(openid: str | None = None) -> list[dict[str, Any]]:
        keys = set(fake.quota) | fake.refused
        return [
            {
                "openid": o,
                "template_id": t,
                "quota": fake.quota.get((o, t), 0),
                "refused": (o, t) in fake.refused,
            }
            for o, t in sorted(keys)
            if openid in (None, o)
        ]

    @r.post("/templates")
    async def add_template(body: TemplateIn) -> dict[str, Any]:
        fake.templates[body.template_id] = body.keys
        return {"templates": fake.templates}

    @r.get("/templates")
    async def templates() -> dict[str, list[str]]:
        return fake.templates

    @r.post("/expire_tokens")
    async def expire_tokens() -> dict[str, int]:
        return {"expired": fake.expire_tokens()}

    @r.post("/faults")
    async def add_fault(body: FaultIn) -> dict[str, Any]:
        """The next `count` calls to `endpoint` answer `errcode` (or an HTTP error)."""
        fake.add_fault(
            known(body.endpoint), body.errcode, body.count, body.http_status, body.delay_s
        )
        return {"ok": True}

    @r.post("/limits")
    async def set_limit(body: LimitIn) -> dict[str, Any]:
        """A per-minute quota on an endpoint; beyond it WeChat answers 45011."""
        if body.per_minute is None:
            fake.per_minute.pop(known(body.endpoint), None)
        else:
            fake.per_minute[known(body.endpoint)] = body.per_minute
        return {"limits": fake.per_minute}

    @r.get("/messages")
    async def messages(openid: str | None = None) -> list[dict[str, Any]]:
        return [m for m in fake.messages if openid in (None, m["touser"])]

    @r.get("/stats")
    async def stats() -> dict[str, int]:
        return dict(fake.calls)

    @r.post("/advance")
    async def advance(body: AdvanceIn) -> dict[str, float]:
        """Move the clock (for the demo process; in-process tests call clock.advance)."""
        clock.advance(body.seconds)
        return {"now": clock.time()}

    @r.post("/reset")
    async def reset() -> dict[str, bool]:
        fake.reset()
        return {"ok": True}

    return r


# The fake's own credentials for tests. Published here, so a production server refuses
# them (anxin.settings.PUBLIC_SECRETS); the demo starts the fake with generated ones.
FAKE_APPID = "wx0000000000demo"
FAKE_SECRET = "demo-app-secret"


def create_app(appid: str | None = None, secret: str | None = None) -> _SubscribeSend:
    """The fake as served: the subscribe message on its lean path, the rest through FastAPI.
    `.state.wechat` is the `FakeWeChat`."""
    fake = FakeWeChat(appid or FAKE_APPID, secret or FAKE_SECRET)
    app = FastAPI(
        title="Fake WeChat API", docs_url="/__mock__/docs", openapi_url="/__mock__/openapi.json"
    )
    app.state.wechat = fake
    app.include_router(_wechat_router(fake))
    app.include_router(_control_router(fake))
    return _SubscribeSend(app, fake)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Inside tests or the demo, Ctrl+C belongs to the host process, not to us.
        yield


@contextlib.asynccontextmanager
async def run_fake_wechat(
    port: int = 0, *, app: Any = None, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the fake in this event loop on loopback; yields its base URL."""
    config = uvicorn.Config(
        app or create_app(),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        # A client that never closes its connection must not hold the shutdown (and with
        # it a whole test session) open.
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():  # e.g. port in use: surface uvicorn's failure
                await task
                raise RuntimeError("fake WeChat server failed to start")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake WeChat API for the Anxin demo and tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--appid", default=None, help="default: ANXIN_WECHAT_APPID")
    parser.add_argument("--secret", default=None, help="default: ANXIN_WECHAT_SECRET")
    args = parser.parse_args()
    args.appid = args.appid or os.environ.get("ANXIN_WECHAT_APPID")
    args.secret = args.secret or os.environ.get("ANXIN_WECHAT_SECRET")
    uvicorn.run(
        create_app(args.appid, args.secret), host=args.host, port=args.port, log_level="info"
    )


if __name__ == "__main__":
    main()
