"""Where the police platform tells us of disposition hits: `/VIID/SubscribeNotifications`
(the subscription we made at registration) and `/VIID/DispositionNotifications`.

The platform authenticates with HTTP Digest using the agreement's credentials; a hit is
accepted only for an object we uploaded under an agreement those credentials belong to,
so one platform cannot raise alerts in a community it has no agreement with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from domain.police import agreements
from domain.police.alerts import DispositionHit, UnknownObject, record_hit
from models import Community, PoliceAgreement
from police_link import digest, viid

log = logging.getLogger(__name__)
REALM = "anxin"


def _reply(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status, headers, media_type="application/VIID+JSON"
    )


def _secret(request: Request) -> bytes:
    settings = request.app.state.runtime.settings
    return hmac.new(settings.jwt_secret.encode(), b"viid-digest-nonce", hashlib.sha256).digest()


async def _authenticated(request: Request) -> list[PoliceAgreement]:
    """The active agreements whose credentials signed this request (none: refuse)."""
    header = request.headers.get("authorization", "")
    user = digest.parse(header).get("username", "")
    if not user:
        return []
    keyring = request.app.state.runtime.keyring
    matched = []
    for a in await agreements.active_agreements():
        if a.username != user:
            continue
        try:
            pw = agreements.password(a, keyring)
        except Exception:  # unreadable with today's keys: this agreement cannot sign
            log.exception("police agreement %s: stored password unreadable", a.id)
            continue

        def password_of(_user: str, pw: str = pw) -> str:
            return pw

        ok = digest.verify(
            header,
            method=request.method,
            path=request.url.path,
            realm=REALM,
            secret=_secret(request),
            password_of=password_of,
        )
        if ok:
            matched.append(a)
    return matched


def _time(value: Any, tz: str) -> datetime | None:
    from zoneinfo import ZoneInfo

    try:
        return datetime.strptime(str(value), "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        return None


def _hits(body: Any) -> list[dict[str, Any]]:
    """Disposition hits in either envelope the platforms use."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    out: list[dict[str, Any]] = []
    if "DispositionNotificationListObject" in body:
        out += body["DispositionNotificationListObject"].get("DispositionNotificationObject", [])
    for n in (body.get("SubscribeNotificationListObject") or {}).get(
        "SubscribeNotificationObject", []
    ):
        nested = (n.get("DispositionNotificationListObject") or {}).get(
            "DispositionNotificationObject"
        )
        if nested:
            out += nested
        else:  # a plain subscription notification: each InfoID is a hit on our object
            for i, oid in enumerate(str(n.get("InfoIDs", "")).split(",")):
                if oid:
                    out.append(
                        {
                            "NotificationID": f"{n.get('NotificationID', '')}-{i}",
                            "Title": n.get("Title", ""),
                            "TriggerTime": n.get("TriggerTime", ""),
                            "CntObjectID": oid,
                        }
                    )
    if not all(isinstance(h, dict) for h in out):
        raise ValueError("notifications must be objects")
    return out


def router() -> APIRouter:
    r = APIRouter(tags=["police link (GA/T 1400)"])

    async def receive(request: Request) -> Response:
        path = request.url.path
        matched = await _authenticated(request)
        if not matched:
            return _reply(
                viid.status_reply(viid.status("", path, viid.INVALID_OPERATION, "Unauthorized")),
                401,
                {"WWW-Authenticate": digest.challenge(REALM, _secret(request))},
            )
        try:
            hits = _hits(json.loads(await request.body()))
        except ValueError as exc:
            return _reply(
                viid.status_reply(viid.status("", path, viid.INVALID_JSON_FORMAT, str(exc)))
            )
        statuses = []
        for h in hits:
            nid = str(h.get("NotificationID", ""))
            oid = str(
                h.get("CntObjectID")
                or (h.get("FaceObject") or {}).get("FaceID")
                or (h.get("MotorVehicleObject") or {}).get("MotorVehicleID")
                or ""
            )
            if not nid or not oid:
                statuses.append(viid.status(nid, path, viid.INVALID_JSON_CONTENT, "ids missing"))
                continue
            code, text = viid.INVALID_JSON_CONTENT, "object is not ours"
            for a in matched:
                tz = (await Community.get(id=a.community_id)).timezone
                hit = DispositionHit(
                    notification_id=nid[:64],
                    disposition_id=str(h.get("DispositionID", ""))[:64],
                    title=str(h.get("Title", "")),
                    trigger_time=_time(h.get("TriggerTime"), tz),
                    object_id=oid[:64],
                )
                try:
                    await record_hit(a, hit)  # None: a redelivery, still OK
                except UnknownObject:
                    continue
                code, text = viid.OK, "OK"
                break
            if code != viid.OK:
                log.warning("police notification %s names unknown object %s", nid, oid)
            statuses.append(viid.status(nid, path, code, text))
        return _reply(viid.status_list_reply(statuses))

    r.add_api_route(viid.SUBSCRIBE_NOTIFICATIONS, receive, methods=["POST"])
    r.add_api_route(viid.DISPOSITION_NOTIFICATIONS, receive, methods=["POST"])
    return r
