"""The resident app as a mobile web page (H5) at /h5/: the mini-program's screens in a
browser, talking to the JSON API exactly as the mini-program does.

The page is static (miniprogram_mock/h5/: index.html, ES modules, CSS); everything it
shows comes from /api/v1 with the Bearer token, and realtime from /api/v1/realtime.

What only the WeChat client can do (`wx.login()`, the phone-number button) is played by
two same-origin routes that ask the fake WeChat for a code, as the WeChat app asks the
real one: `POST /h5/wx/login` and `POST /h5/wx/phone_code`. They exist only where the
server talks to the fake WeChat (never in production, never against weixin.qq.com), so
the page never needs a second origin and its CSP stays `connect-src 'self'`.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles

from anxin.settings import Settings, is_real_wechat_url

ROOT = Path(__file__).parent / "h5"
PREFIX = "/h5"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' {ws}; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class WxLoginIn(BaseModel):
    # The WeChat user of this browser, as the handle we gave it (kept by the page); none:
    # a new user. A handle is the openid with our MAC, so a page can only come back as a
    # user it was given, never name another resident's openid.
    user: str | None = Field(None, max_length=160, pattern=r"^[A-Za-z0-9_.-]+$")


class WxPhoneIn(BaseModel):
    phone_number: str = Field(min_length=5, max_length=20, pattern=r"^\+?[0-9]+$")


class WxSubscribeIn(BaseModel):
    user: str = Field(max_length=160, pattern=r"^[A-Za-z0-9_.-]+$")
    template_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    accept: bool


def _mac(settings: Settings, openid: str) -> str:
    key = hashlib.sha256(b"anxin-h5-wechat-user:" + settings.jwt_secret.encode()).digest()
    return hmac.new(key, openid.encode(), hashlib.sha256).hexdigest()[:32]


def user_handle(settings: Settings, openid: str) -> str:
    return f"{openid}.{_mac(settings, openid)}"


def openid_of(settings: Settings, handle: str) -> str | None:
    openid, _, mac = handle.rpartition(".")
    if not openid or not hmac.compare_digest(mac, _mac(settings, openid)):
        return None
    return openid


def enabled(settings: Settings) -> bool:
    """Only beside the fake WeChat: a real deployment runs the real mini-program."""
    return not settings.is_production and not is_real_wechat_url(settings.wechat_base_url)


def _router(settings: Settings) -> APIRouter:
    r = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def _fake(path: str, body: dict[str, object]) -> dict[str, object]:
        try:
            async with httpx.AsyncClient(base_url=settings.wechat_base_url, timeout=5) as c:
                resp = await c.post(f"/__mock__/{path}", json=body)
                resp.raise_for_status()
                data: dict[str, object] = resp.json()
                return data
        except httpx.HTTPError:
            raise HTTPException(502, "the fake WeChat did not answer") from None

    @r.get("")
    async def bare() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", 308)

    @r.get("/")
    async def index(request: Request) -> FileResponse:
        host = request.url.netloc
        return FileResponse(
            ROOT / "index.html",
            media_type="text/html; charset=utf-8",
            headers={
                "content-security-policy": CSP.format(ws=f"ws://{host} wss://{host}"),
                "cache-control": "no-store",
                "referrer-policy": "no-referrer",
                "x-frame-options": "DENY",
            },
        )

    @r.post("/wx/login")
    async def wx_login(body: WxLoginIn) -> dict[str, object]:
        """wx.login(): a one-time js_code for this WeChat user (and its handle)."""
        openid = openid_of(settings, body.user) if body.user else None
        if body.user and openid is None:
            raise HTTPException(422, "unknown WeChat user handle")
        got = await _fake("login", {"openid": openid})
        return {"code": got["code"], "user": user_handle(settings, str(got["openid"]))}

    @r.post("/wx/phone_code")
    async def wx_phone_code(body: WxPhoneIn) -> dict[str, object]:
        """The getPhoneNumber button: a one-time code bound to the number."""
        got = await _fake("phone_code", {"phone_number": body.phone_number})
        return {"code": got["code"]}

    @r.post("/wx/subscribe")
    async def wx_subscribe(body: WxSubscribeIn) -> dict[str, object]:
        """wx.requestSubscribeMessage(): the user allows one message of a template, or
        refuses it; WeChat records it (the page then reports it to the API)."""
        openid = openid_of(settings, body.user)
        if openid is None:
            raise HTTPException(422, "unknown WeChat user handle")
        action = "accept" if body.accept else "reject"
        await _fake(
            "subscribe", {"openid": openid, "template_id": body.template_id, "action": action}
        )
        return {"template_id": body.template_id, "accepted": body.accept}

    return r


def install(app: FastAPI, settings: Settings) -> None:
    if not enabled(settings):
        return
    app.include_router(_router(settings))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=ROOT / "static"), name="h5-static")
