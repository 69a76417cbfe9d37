"""The VIID client: register with HTTP Digest, keep alive, unregister, post object lists,
subscribe. Every request says who we are in `User-Identify` and speaks
`application/VIID+JSON`; every answer is read through its `ResponseStatusObject`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from police_link import viid


class ViidError(Exception):
    """The platform answered, but not with OK (its StatusCode and text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"VIID status {code}: {text}")
        self.code = code
        self.text = text


class ViidUnauthorized(Exception):
    """401: wrong credentials at register, or our registration is gone (re-register)."""


class ViidUnavailable(Exception):
    """No usable answer: connection refused, timeout, 5xx, a body that is not VIID."""


class ViidClient:
    def __init__(
        self,
        base_url: str,
        system_id: str,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.system_id = system_id
        self._auth = httpx.DigestAuth(username, password)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={
                "Content-Type": viid.CONTENT_TYPE,
                "Accept": "application/VIID+JSON, application/json",
                "User-Identify": system_id,
            },
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: Any = None, *, digest: bool = False, **params: Any
    ) -> Any:
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        try:
            r = await self._http.request(
                method,
                path,
                content=content,
                params=params or None,
                auth=self._auth if digest else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise ViidUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code == 401:
            raise ViidUnauthorized(r.text[:200])
        if r.status_code >= 500:
            raise ViidUnavailable(f"HTTP {r.status_code}")
        try:
            return r.json()
        except ValueError as exc:
            raise ViidUnavailable(f"HTTP {r.status_code}: not JSON") from exc

    async def _one(self, path: str, body: Any, *, digest: bool = False) -> viid.Status:
        reply = await self._call("POST", path, body, digest=digest)
        try:
            statuses = viid.parse_statuses(reply)
        except (ValueError, AttributeError) as exc:
            raise ViidUnavailable(str(exc)) from exc
        first = statuses[0] if statuses else viid.Status("", viid.OTHER_ERROR, "empty")
        if first.code != viid.OK:
            raise ViidError(first.code, first.text)
        return first

    async def register(self) -> None:
        await self._one(
            viid.REGISTER, {"RegisterObject": {"DeviceID": self.system_id}}, digest=True
        )

    async def keepalive(self) -> None:
        await self._one(viid.KEEPALIVE, {"KeepaliveObject": {"DeviceID": self.system_id}})

    async def unregister(self) -> None:
        await self._one(
            viid.UNREGISTER, {"UnRegisterObject": {"DeviceID": self.system_id}}, digest=True
        )

    async def post_objects(
        self, collection: viid.Collection, objects: list[dict[str, Any]]
    ) -> list[viid.Status]:
        """One ResponseStatus per object, in the order sent (matched by Id when given)."""
        reply = await self._call("POST", collection.path, viid.envelope(collection, objects))
        try:
            statuses = viid.parse_statuses(reply)
        except (ValueError, AttributeError) as exc:
            raise ViidUnavailable(str(exc)) from exc
        by_id = {s.id: s for s in statuses if s.id}
        out = []
        for i, obj in enumerate(objects):
            oid = str(obj[collection.id_field])
            found = by_id.get(oid) or (statuses[i] if i < len(statuses) else None)
            out.append(found or viid.Status(oid, viid.OTHER_ERROR, "no status for object"))
        return out

    async def subscribe(self, subscription: dict[str, Any]) -> None:
        reply = await self._call(
            "POST", viid.SUBSCRIBES, {"SubscribeListObject": {"SubscribeObject": [subscription]}}
        )
        try:
            statuses = viid.parse_statuses(reply)
        except (ValueError, AttributeError) as exc:
            raise ViidUnavailable(str(exc)) from exc
        if not statuses or statuses[0].code != viid.OK:
            s = statuses[0] if statuses else viid.Status("", viid.OTHER_ERROR, "empty")
            raise ViidError(s.code, s.text)

    async def unsubscribe(self, subscribe_id: str) -> None:
        await self._call("DELETE", viid.SUBSCRIBES, IDList=subscribe_id)
