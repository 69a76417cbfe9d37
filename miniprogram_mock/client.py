"""The resident's side of the mini-program: what the app does, as plain async calls.

It talks to WeChat (the fake, for wx.login and the phone button) and to the Anxin API
exactly as the real mini-program would, so tests and the demo exercise the whole path.
"""

from __future__ import annotations

import uuid
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

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {**self.headers, **(extra or {})}

    async def get(
        self, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return await self.api.get(path, headers=self._headers(headers), **kw)

    async def post(
        self, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return await self.api.post(path, headers=self._headers(headers), **kw)

    async def put(
        self, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return await self.api.put(path, headers=self._headers(headers), **kw)

    async def delete(
        self, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return await self.api.delete(path, headers=self._headers(headers), **kw)

    async def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a collection, following `next` page by page."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            r = await self.get(path, params=query)
            r.raise_for_status()
            page = r.json()
            out += page["items"]
            cursor = page["next"]
            if cursor is None:
                return out

    async def join(self, room_id: int, role: str = "owner") -> httpx.Response:
        return await self.post("/api/v1/memberships", json={"room_id": room_id, "role": role})

    async def set_language(self, language: str) -> httpx.Response:
        return await self.put("/api/v1/me/language", json={"language": language})

    async def open_door(self, device_id: int, key: str | None = None) -> httpx.Response:
        """The remote-open button: one Idempotency-Key per tap, sent again on a retry."""
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        return await self.post(f"/api/v1/doors/{device_id}/open", headers=headers)
