"""A fake police platform (公安视图库) speaking GA/T 1400.4 over HTTP, for tests, the demo
and the benchmark. Kept apart from the link it tests, like the fake WeChat server.

What it does as a real 视图库 would:
  POST /VIID/System/Register, /UnRegister   HTTP Digest (RFC 2617, qop=auth, MD5)
  POST /VIID/System/Keepalive               a registered User-Identify only
  GET  /VIID/System/Time
  POST /VIID/APEs, /VIID/Faces, /VIID/MotorVehicles, /VIID/Community/{DoorDevices,
       DoorInfos,PersonInfos,CarInfos,VisitorInfos}
                                            checks each object's fields, stores it by its
                                            id (a resend is the same object), answers a
                                            ResponseStatusListObject
  POST /VIID/Subscribes, DELETE /VIID/Subscribes?IDList=
Anything from an unregistered User-Identify gets 401 (the client registers again).

Control surface for tests and the demo, under /__mock__/ (never part of the standard):
  GET  /__mock__/state                   what it received, registrations, subscriptions
  POST /__mock__/outage {"mode": ...}    "down" (503), "lose_replies" (store, then 503),
                                         "none"; also forgets registrations when asked
  POST /__mock__/disposition {...}       raise a disposition hit on an object we hold:
                                         POSTs a SubscribeNotification to the subscriber

Run: `async with run_fake_police(users={"anxin": "pw"}) as (url, fake): ...`
or   `python -m fake_police --port 8766 --user anxin:secret`
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from police_link import digest, viid

REALM = "viid"
_DIGITS = {n: re.compile(rf"^\d{{{n}}}$") for n in (14, 20, 41, 48)}

# Fields each collection must carry, and the digit-count of id-like ones.
REQUIRED: dict[str, dict[str, int | None]] = {
    "/VIID/APEs": {"ApeID": 20, "Name": None, "Place": None, "IsOnline": None},
    "/VIID/Faces": {"FaceID": 48, "SourceID": 41, "DeviceID": 20, "FaceAppearTime": 14},
    "/VIID/MotorVehicles": {
        "MotorVehicleID": 48,
        "SourceID": 41,
        "DeviceID": 20,
        "PlateNo": None,
        "PassTime": 14,
        "HasPlate": None,
    },
    "/VIID/Community/DoorDevices": {"DeviceID": 20, "Name": None, "CommunityID": 20},
    "/VIID/Community/DoorInfos": {"DoorID": 20, "DeviceID": 20, "CommunityID": 20},
    "/VIID/Community/PersonInfos": {"PersonID": 20, "Name": None, "CommunityID": 20},
    "/VIID/Community/CarInfos": {"CarInfoID": 20, "PlateNo": None, "CommunityID": 20},
    "/VIID/Community/VisitorInfos": {"VisitorID": 20, "Name": None, "CommunityID": 20},
}


def _now() -> datetime:
    return datetime.now()


def _reply(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status, media_type="application/VIID+JSON"
    )


def check_object(path: str, obj: dict[str, Any]) -> str | None:
    """Why the object is not acceptable, or None."""
    for name, digits in REQUIRED[path].items():
        value = obj.get(name)
        if value in (None, ""):
            return f"{name} missing"
        if digits and not _DIGITS[digits].match(str(value)):
            return f"{name} must be {digits} digits"
    subs = (obj.get("SubImageList") or {}).get("SubImageInfoObject") or []
    for sub in subs:
        try:
            data = base64.b64decode(sub.get("Data", ""), validate=True)
        except (binascii.Error, ValueError):
            return "SubImageList Data is not base64"
        if not data.startswith(b"\xff\xd8"):
            return "SubImageList Data is not a JPEG"
        for name in ("ImageID", "Type", "ShotTime"):
            if not sub.get(name):
                return f"SubImageInfoObject.{name} missing"
    return None


@dataclass
class FakePolicePlatform:
    users: dict[str, str]
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    mode: str = "none"  # none | down | lose_replies
    registered: dict[str, datetime] = field(default_factory=dict)
    register_attempts: list[dict[str, Any]] = field(default_factory=list)
    keepalives: Counter[str] = field(default_factory=Counter)
    unregistered: list[str] = field(default_factory=list)
    # path -> object id -> object (as a 视图库 keeps it: one object per id)
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    receipts: Counter[str] = field(default_factory=Counter)  # object id -> times received
    refused: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    # How the fake reaches subscribers (tests point it at the app under test).
    deliver_transport: httpx.AsyncBaseTransport | None = None
    deliver_auth: tuple[str, str] | None = None

    def received(self, path: str) -> dict[str, dict[str, Any]]:
        return self.objects.get(path, {})

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.receipts.values() if n > 1)

    def state(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "registered": sorted(self.registered),
            "register_attempts": len(self.register_attempts),
            "keepalives": dict(self.keepalives),
            "objects": {p: len(o) for p, o in self.objects.items()},
            "with_images": {
                p: sum(1 for x in o.values() if x.get("SubImageList"))
                for p, o in self.objects.items()
            },
            "receipts": sum(self.receipts.values()),
            "refused": self.refused[-50:],
            "subscriptions": list(self.subscriptions.values()),
            "notifications": self.notifications[-50:],
        }

    async def raise_disposition(
        self,
        object_id: str,
        *,
        title: str = "布控告警",
        disposition_id: str | None = None,
        notification_id: str | None = None,
    ) -> httpx.Response:
        """A watchlist hit on `object_id`: tell every subscriber (the first one answers)."""
        if not any(object_id in objs for objs in self.objects.values()):
            raise KeyError(f"object {object_id} was never received")
        if not self.subscriptions:
            raise LookupError("nobody subscribed")
        sub = next(iter(self.subscriptions.values()))
        now = _now().strftime("%Y%m%d%H%M%S")
        nid = notification_id or f"{now}{secrets.randbelow(10**6):06d}"
        hit = {
            "NotificationID": nid,
            "DispositionID": disposition_id or f"D{secrets.token_hex(6)}",
            "Title": title,
            "TriggerTime": now,
            "CntObjectID": object_id,
        }
        body = {
            "SubscribeNotificationListObject": {
                "SubscribeNotificationObject": [
                    {
                        "NotificationID": nid,
                        "SubscribeID": sub["SubscribeID"],
                        "Title": title,
                        "TriggerTime": now,
                        "InfoIDs": object_id,
                        "DispositionNotificationListObject": {
                            "DispositionNotificationObject": [hit]
                        },
                    }
                ]
            }
        }
        self.notifications.append(hit)
        auth = httpx.DigestAuth(*self.deliver_auth) if self.deliver_auth else None
        async with httpx.AsyncClient(transport=self.deliver_transport, timeout=10) as client:
            return await client.post(
                sub["ReceiveAddr"],
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": viid.CONTENT_TYPE},
                auth=auth or httpx.USE_CLIENT_DEFAULT,
            )


def create_app(fake: FakePolicePlatform) -> FastAPI:
    app = FastAPI(title="Fake police platform (GA/T 1400)", docs_url="/__mock__/docs")
    app.state.fake = fake

    def unauthorized() -> Response:
        return Response(
            json.dumps(
                viid.status_reply(viid.status("", "", viid.INVALID_OPERATION, "Unauthorized"))
            ),
            401,
            headers={"WWW-Authenticate": digest.challenge(REALM, fake.secret)},
            media_type="application/VIID+JSON",
        )

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            return None

    def digest_user(request: Request) -> str | None:
        return digest.verify(
            request.headers.get("authorization", ""),
            method=request.method,
            path=request.url.path,
            realm=REALM,
            secret=fake.secret,
            password_of=fake.users.get,
        )

    def registered(request: Request) -> str | None:
        who = request.headers.get("user-identify", "")
        return who if who in fake.registered else None

    @app.post(viid.REGISTER)
    async def register(request: Request) -> Response:
        if fake.mode != "none":
            return Response("service unavailable", 503)
        body = await body_of(request)
        user = digest_user(request)
        fake.register_attempts.append({"user": user, "authorized": user is not None})
        if user is None:
            return unauthorized()
        device = str(((body or {}).get("RegisterObject") or {}).get("DeviceID", ""))
        if not _DIGITS[20].match(device) or device != request.headers.get("user-identify"):
            return _reply(
                viid.status_reply(
                    viid.status(device, viid.REGISTER, viid.INVALID_JSON_CONTENT, "DeviceID")
                )
            )
        fake.registered[device] = _now()
        return _reply(viid.status_reply(viid.status(device, viid.REGISTER, now=_now())))

    @app.post(viid.UNREGISTER)
    async def unregister(request: Request) -> Response:
        if digest_user(request) is None:
            return unauthorized()
        device = request.headers.get("user-identify", "")
        fake.registered.pop(device, None)
        fake.unregistered.append(device)
        return _reply(viid.status_reply(viid.status(device, viid.UNREGISTER, now=_now())))

    @app.post(viid.KEEPALIVE)
    async def keepalive(request: Request) -> Response:
        if fake.mode != "none":
            return Response("service unavailable", 503)
        who = registered(request)
        if who is None:
            return unauthorized()
        fake.keepalives[who] += 1
        fake.registered[who] = _now()
        return _reply(viid.status_reply(viid.status(who, viid.KEEPALIVE, now=_now())))

    @app.get(viid.TIME)
    async def system_time() -> Response:
        return _reply(
            {
                "SystemTimeObject": {
                    "VIIDServerID": "0" * 20,
                    "TimeMode": "1",
                    "LocalTime": _now().strftime("%Y%m%d%H%M%S"),
                    "TimeZone": "Asia/Shanghai",
                }
            }
        )

    async def collection_post(request: Request) -> Response:
        if fake.mode == "down":
            return Response("service unavailable", 503)
        if registered(request) is None:
            return unauthorized()
        path = request.url.path
        collection = viid.BY_PATH[path]
        try:
            objects = viid.unwrap(collection, await body_of(request))
        except ValueError as exc:
            return _reply(
                viid.status_reply(viid.status("", path, viid.INVALID_JSON_FORMAT, str(exc)))
            )
        statuses = []
        store = fake.objects.setdefault(path, {})
        for obj in objects:
            oid = str(obj.get(collection.id_field, ""))
            problem = check_object(path, obj)
            if problem:
                fake.refused.append({"path": path, "id": oid, "why": problem})
                statuses.append(viid.status(oid, path, viid.INVALID_JSON_CONTENT, problem))
                continue
            store[oid] = obj
            fake.receipts[oid] += 1
            statuses.append(viid.status(oid, path, now=_now()))
        if fake.mode == "lose_replies":  # stored, but the answer never reaches the client
            return Response("gateway timeout", 504)
        return _reply(viid.status_list_reply(statuses))

    for c in viid.COLLECTIONS:
        app.add_api_route(c.path, collection_post, methods=["POST"])

    @app.post(viid.SUBSCRIBES)
    async def subscribe(request: Request) -> Response:
        if fake.mode == "down":
            return Response("service unavailable", 503)
        if registered(request) is None:
            return unauthorized()
        body = await body_of(request) or {}
        subs = ((body.get("SubscribeListObject") or {}).get("SubscribeObject")) or []
        statuses = []
        for sub in subs:
            sid = str(sub.get("SubscribeID", ""))
            if not sid or not sub.get("ReceiveAddr"):
                statuses.append(viid.status(sid, viid.SUBSCRIBES, viid.INVALID_JSON_CONTENT, "x"))
                continue
            fake.subscriptions[sid] = sub
            statuses.append(viid.status(sid, viid.SUBSCRIBES, now=_now()))
        return _reply(viid.status_list_reply(statuses))

    @app.delete(viid.SUBSCRIBES)
    async def unsubscribe(request: Request, IDList: str = "") -> Response:  # noqa: N803
        if registered(request) is None:
            return unauthorized()
        ids = [i for i in IDList.split(",") if i]
        for sid in ids:
            fake.subscriptions.pop(sid, None)
        return _reply(viid.status_list_reply([viid.status(i, viid.SUBSCRIBES) for i in ids]))

    # -- control ------------------------------------------------------------------------
    @app.get("/__mock__/state")
    async def state() -> JSONResponse:
        return JSONResponse(fake.state())

    @app.post("/__mock__/outage")
    async def outage(request: Request) -> JSONResponse:
        body = await body_of(request) or {}
        fake.mode = str(body.get("mode", "down"))
        if body.get("forget_registrations"):
            fake.registered.clear()
        return JSONResponse({"mode": fake.mode})

    @app.post("/__mock__/disposition")
    async def disposition(request: Request) -> JSONResponse:
        body = await body_of(request) or {}
        try:
            r = await fake.raise_disposition(
                str(body.get("object_id", "")), title=str(body.get("title", "布控告警"))
            )
        except (KeyError, LookupError) as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return JSONResponse({"delivered": r.status_code, "reply": r.text[:500]})

    return app


@asynccontextmanager
async def run_fake_police(
    users: dict[str, str], port: int = 0, host: str = "127.0.0.1"
) -> AsyncIterator[tuple[str, FakePolicePlatform]]:
    """Serve the fake on loopback in this event loop; yields (base URL, the fake)."""
    from miniprogram_mock.fake_wechat import run_fake_wechat  # the same embedded server

    fake = FakePolicePlatform(users=dict(users))
    async with run_fake_wechat(port, app=create_app(fake), host=host) as url:
        yield url, fake
