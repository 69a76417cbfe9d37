"""Cameras as devices of a community: RTSP sources, encrypted credentials, door links,
health.

The RTSP URLs are stored without credentials; the user name and password are encrypted at
rest with the face keyring (associated data `camera:<uid>`, so a blob copied to another
camera does not decrypt) and joined to the URL only when the media backend asks for the
source. A URL pasted with `user:pass@` in it has them moved into the encrypted field.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from tortoise.transactions import in_transaction

from anxin.bus import Bus
from anxin.channels import VIDEO_CAMERA_CHANGED
from anxin.crypto import KeyRing
from anxin.errors import invalid, not_found
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from models import Camera, CameraDoor, Device, VideoCodec

MAX_DOORS = 16


@dataclass(frozen=True)
class CameraSource:
    """What a media backend needs to pull a camera: never stored, never logged."""

    camera_id: int
    uid: str
    community_id: int
    main_url: str  # with credentials
    sub_url: str  # with credentials; the main stream when the camera has no sub-stream
    sub_codec: VideoCodec

    def __repr__(self) -> str:  # keep passwords out of logs and tracebacks
        return f"CameraSource(camera_id={self.camera_id}, uid={self.uid!r})"


def _ad(uid: str) -> bytes:
    return f"camera:{uid}".encode()


def split_rtsp_url(url: str) -> tuple[str, str, str]:
    """(url without credentials, user, password); refuses anything but rtsp(s)://host."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise invalid("bad_rtsp_url", "RTSP 地址格式错误", "malformed RTSP URL") from None
    if (
        parts.scheme not in ("rtsp", "rtsps")
        or not parts.hostname
        or any(c in url for c in "\x00\r\n \t")
    ):
        raise invalid(
            "bad_rtsp_url", "请填写 rtsp:// 开头的摄像头地址", "the URL must be rtsp://host/..."
        )
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), user, password


def with_credentials(url: str, user: str, password: str) -> str:
    if not url or not user:
        return url
    parts = urlsplit(url)
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query, ""))


def source_of(camera: Camera, keyring: KeyRing) -> CameraSource:
    user = password = ""
    if camera.credentials_enc:
        creds = json.loads(keyring.decrypt(camera.credentials_enc, _ad(camera.uid)))
        user, password = creds.get("user", ""), creds.get("password", "")
    main = with_credentials(camera.main_url, user, password)
    sub = with_credentials(camera.sub_url, user, password) if camera.sub_url else main
    return CameraSource(camera.id, camera.uid, camera.community_id, main, sub, camera.sub_codec)


async def _door_ids(community_id: int, device_ids: list[int]) -> list[int]:
    ids = sorted(set(device_ids))
    if len(ids) > MAX_DOORS:
        raise invalid("too_many_doors", "关联的门太多", f"at most {MAX_DOORS} doors per camera")
    found = await Device.filter(id__in=ids, community_id=community_id).values_list("id", flat=True)
    if len(found) != len(ids):
        raise not_found("device")
    return ids


def _credentials_blob(keyring: KeyRing, uid: str, user: str, password: str) -> bytes | None:
    if not user and not password:
        return None
    return keyring.encrypt(json.dumps({"user": user, "password": password}).encode(), _ad(uid))


async def create_camera(
    principal: Principal,
    community_id: int,
    keyring: KeyRing,
    bus: Bus,
    *,
    name: str,
    main_url: str,
    sub_url: str = "",
    sub_codec: VideoCodec = VideoCodec.H264,
    place: str = "",
    username: str = "",
    password: str = "",
    door_ids: list[int] | None = None,
) -> Camera:
    authorize(principal, Action.DEVICE_MANAGE, community_id)
    main, u1, p1 = split_rtsp_url(main_url)
    sub, u2, p2 = split_rtsp_url(sub_url) if sub_url else ("", "", "")
    username, password = username or u1 or u2, password or p1 or p2
    doors = await _door_ids(community_id, door_ids or [])
    uid = secrets.token_hex(8)
    async with in_transaction():
        camera = await Camera.create(
            uid=uid,
            community_id=community_id,
            name=name,
            place=place,
            main_url=main,
            sub_url=sub,
            sub_codec=sub_codec,
            credentials_enc=_credentials_blob(keyring, uid, username, password),
        )
        for device_id in doors:
            await CameraDoor.create(camera_id=camera.id, device_id=device_id)
        await audit.record(
            "camera.created",
            **principal.audit_actor(),
            community_id=community_id,
            target_type="camera",
            target_id=camera.id,
            details={"name": name, "doors": doors},
        )
    await bus.publish(VIDEO_CAMERA_CHANGED, {"camera_id": camera.id})
    return camera


async def update_camera(
    principal: Principal,
    camera_id: int,
    keyring: KeyRing,
    bus: Bus,
    changes: dict[str, Any],
) -> Camera:
    """Apply the given fields (name, place, main_url, sub_url, sub_codec, enabled,
    username + password, door_ids)."""
    camera = await scoped_row(principal, Action.DEVICE_MANAGE, Camera, camera_id, "camera")
    fields: list[str] = []
    user_pass: tuple[str, str] | None = None
    if "main_url" in changes:
        camera.main_url, u, p = split_rtsp_url(changes["main_url"])
        fields.append("main_url")
        user_pass = (u, p) if u else None
    if "sub_url" in changes:
        camera.sub_url = split_rtsp_url(changes["sub_url"])[0] if changes["sub_url"] else ""
        fields.append("sub_url")
    for simple in ("name", "place", "sub_codec", "enabled"):
        if simple in changes:
            setattr(camera, simple, changes[simple])
            fields.append(simple)
    if "username" in changes or "password" in changes:
        user_pass = (changes.get("username") or "", changes.get("password") or "")
    if user_pass is not None:
        camera.credentials_enc = _credentials_blob(keyring, camera.uid, *user_pass)
        fields.append("credentials_enc")
    async with in_transaction():
        if fields:
            await camera.save(update_fields=fields)
        if "door_ids" in changes:
            doors = await _door_ids(camera.community_id, changes["door_ids"] or [])
            await CameraDoor.filter(camera_id=camera.id).delete()
            for device_id in doors:
                await CameraDoor.create(camera_id=camera.id, device_id=device_id)
            fields.append("doors")
        await audit.record(
            "camera.updated",
            **principal.audit_actor(),
            community_id=camera.community_id,
            target_type="camera",
            target_id=camera.id,
            details={
                "fields": [f for f in fields if f != "credentials_enc"]
                + (["credentials"] if "credentials_enc" in fields else [])
            },
        )
    await bus.publish(VIDEO_CAMERA_CHANGED, {"camera_id": camera.id})
    return camera


async def delete_camera(principal: Principal, camera_id: int, bus: Bus) -> None:
    """The camera and its door links go; its captures stay (they are the record of what
    happened) until their retention ends."""
    camera = await scoped_row(principal, Action.DEVICE_MANAGE, Camera, camera_id, "camera")
    async with in_transaction():
        await CameraDoor.filter(camera_id=camera.id).delete()
        await camera.delete()
        await audit.record(
            "camera.deleted",
            **principal.audit_actor(),
            community_id=camera.community_id,
            target_type="camera",
            target_id=camera_id,
            details={"name": camera.name},
        )
    await bus.publish(VIDEO_CAMERA_CHANGED, {"camera_id": camera_id})


async def list_cameras(principal: Principal, community_id: int) -> list[Camera]:
    authorize(principal, Action.DEVICE_READ, community_id)
    return await Camera.filter(community_id=community_id).order_by("id")


async def get_camera(principal: Principal, camera_id: int) -> Camera:
    return await scoped_row(principal, Action.DEVICE_READ, Camera, camera_id, "camera")


async def door_ids_of(camera_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {cid: [] for cid in camera_ids}
    for row in await CameraDoor.filter(camera_id__in=camera_ids).values("camera_id", "device_id"):
        out[row["camera_id"]].append(row["device_id"])
    return out


async def cameras_at_door(device_id: int) -> list[Camera]:
    """Enabled cameras watching the door `device_id`."""
    return await Camera.filter(doors__device_id=device_id, enabled=True).order_by("id")


async def active_sources(keyring: KeyRing) -> list[CameraSource]:
    """Every enabled camera, as the media backend pulls it."""
    return [source_of(c, keyring) for c in await Camera.filter(enabled=True).order_by("id")]


async def set_health(
    camera_id: int, *, reachable: bool, last_frame_at: datetime | None, error: str, at: datetime
) -> None:
    updates: dict[str, Any] = {"reachable": reachable, "last_error": error[:200]}
    updates["health_checked_at"] = at
    if last_frame_at is not None:
        updates["last_frame_at"] = last_frame_at
    await Camera.filter(id=camera_id).update(**updates)
