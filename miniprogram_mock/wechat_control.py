"""Async helper for the fake WeChat's /__mock__ control API (tests, demo, mini-program mock)."""

from __future__ import annotations

from typing import Any

import httpx


class FakeWeChatControl:
    """Plays the phone and the user: wx.login, the phone button, subscription taps, faults."""

    def __init__(self, base_url: str, http: httpx.AsyncClient | None = None) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=5.0)
        self._own = http is None

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = await self._http.post(f"/__mock__/{path}", json=body or {})
        resp.raise_for_status()
        return resp.json()

    async def _get(self, path: str, **params: Any) -> Any:
        resp = await self._http.get(
            f"/__mock__/{path}", params={k: v for k, v in params.items() if v}
        )
        resp.raise_for_status()
        return resp.json()

    async def login(self, openid: str | None = None, unionid: str | None = None) -> dict[str, Any]:
        """wx.login(): returns {"code", "openid", "expires_in"}."""
        return await self._post("login", {"openid": openid, "unionid": unionid})

    async def phone_code(self, phone_number: str, country_code: str = "86") -> str:
        body = {"phone_number": phone_number, "country_code": country_code}
        return (await self._post("phone_code", body))["code"]

    async def encrypted_data(
        self,
        openid: str,
        *,
        phone_number: str = "13800138000",
        data: dict[str, Any] | None = None,
        appid: str | None = None,
    ) -> dict[str, str]:
        body = {"openid": openid, "phone_number": phone_number, "data": data, "appid": appid}
        return await self._post("encrypted_data", body)

    async def subscribe(
        self, openid: str, template_id: str, action: str = "accept", count: int = 1
    ) -> dict[str, Any]:
        body = {"openid": openid, "template_id": template_id, "action": action, "count": count}
        return await self._post("subscribe", body)

    async def expire_tokens(self) -> int:
        return (await self._post("expire_tokens"))["expired"]

    async def fault(
        self,
        endpoint: str,
        errcode: int = -1,
        count: int = 1,
        http_status: int = 200,
        delay_s: float = 0.0,
    ) -> None:
        await self._post(
            "faults",
            {
                "endpoint": endpoint,
                "errcode": errcode,
                "count": count,
                "http_status": http_status,
                "delay_s": delay_s,
            },
        )

    async def limit(self, endpoint: str, per_minute: int | None) -> None:
        await self._post("limits", {"endpoint": endpoint, "per_minute": per_minute})

    async def add_template(self, template_id: str, keys: list[str]) -> None:
        await self._post("templates", {"template_id": template_id, "keys": keys})

    async def messages(self, openid: str | None = None) -> list[dict[str, Any]]:
        return await self._get("messages", openid=openid)

    async def subscriptions(self, openid: str | None = None) -> list[dict[str, Any]]:
        return await self._get("subscriptions", openid=openid)

    async def stats(self) -> dict[str, int]:
        return await self._get("stats")

    async def reset(self) -> None:
        await self._post("reset")
