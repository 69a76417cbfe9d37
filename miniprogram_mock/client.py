"""The resident's side of the mini-program: what the app does, as plain async calls.

It talks to WeChat (the fake, for wx.login and the phone button) and to the Anxin API
exactly as the real mini-program would, so tests and the demo exercise the whole path.
"""

from __future__ import annotations

from typing import Any

import httpx


class MiniProgram:
    def __init__(self, api: httpx.AsyncClient, wechat_url: str, openid: str | None = None) -> None:
        self.api = api
        self.wechat = httpx.AsyncClient(base_url=wechat_url, timeout=10)
        self.openid = openid
        self.access_token: str | None = None
        self.refresh_token: str | None = None

    async def aclose(self) -> None:
        await self.wechat.aclose()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}

    async def wx_login(self) -> str:
        """wx.login(): a fresh one-time code for this WeChat user."""
        r = await self.wechat.post("/__mock__/login", json={"openid": self.openid})
        r.raise_for_status()
        body = r.json()
        self.openid = body["openid"]
        return body["code"]

    async def login(self) -> dict[str, Any]:
        code = await self.wx_login()
        r = await self.api.post("/api/v1/auth/wechat/login", json={"js_code": code})
        r.raise_for_status()
        tokens = r.json()
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        return tokens

    async def refresh(self) -> httpx.Response:
        r = await self.api.post("/api/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        if r.status_code == 200:
            self.access_token = r.json()["access_token"]
            self.refresh_token = r.json()["refresh_token"]
        return r

    async def bind_phone(self, phone: str) -> httpx.Response:
        r = await self.wechat.post("/__mock__/phone_code", json={"phone_number": phone})
        r.raise_for_status()
        return await self.post("/api/v1/me/phone", json={"code": r.json()["code"]})

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.api.get(path, headers=self.headers, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.api.post(path, headers=self.headers, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.api.delete(path, headers=self.headers, **kwargs)

    async def join(self, room_id: int, role: str = "owner") -> httpx.Response:
        return await self.post("/api/v1/memberships", json={"room_id": room_id, "role": role})
