"""Viewing tickets: short-lived, signed, for one camera and one viewer.

A ticket is what a browser presents to the media path (HLS playlist and segments, the
WebRTC signalling) instead of a login: `v1.<camera>.<viewer>.<expires_ms>.<nonce>.<sig>`,
HMAC-SHA256 over everything before the signature with the video secret
(`ANXIN_VIDEO_SECRET`, or a key derived from the JWT secret). Stateless, so any worker or
a media server holding the secret can check one; expiry is read from the service clock,
so tests move time instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anxin.clock import clock

VERSION = "v1"
MAX_TICKET_LEN = 200
_TICKET = re.compile(
    r"^v1\.(\d{1,10})\.(\d{1,10})\.(\d{13})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$"
)


@dataclass(frozen=True)
class Ticket:
    camera_id: int
    viewer_id: int  # staff account id
    expires_ms: int
    nonce: str
    token: str

    @property
    def expires_at_s(self) -> float:
        return self.expires_ms / 1000


class TicketError(Exception):
    """Missing, malformed, forged, expired, or for another camera."""


def ticket_key(settings: Any) -> bytes:
    if settings.video_secret:
        return hashlib.sha256(settings.video_secret.encode()).digest()
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"anxin-video", info=b"viewing tickets v1"
    ).derive(settings.jwt_secret.encode())


def _sign(key: bytes, body: str) -> str:
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue(key: bytes, camera_id: int, viewer_id: int, ttl_s: int) -> Ticket:
    expires_ms = int((clock.time() + ttl_s) * 1000)
    nonce = secrets.token_urlsafe(12)
    body = f"{VERSION}.{int(camera_id)}.{int(viewer_id)}.{expires_ms}.{nonce}"
    return Ticket(camera_id, viewer_id, expires_ms, nonce, f"{body}.{_sign(key, body)}")


def verify(key: bytes, token: str, camera_id: int) -> Ticket:
    """The ticket if it is genuine, unexpired and for `camera_id`; TicketError otherwise."""
    if not token or len(token) > MAX_TICKET_LEN:
        raise TicketError("no ticket")
    m = _TICKET.match(token)
    if m is None:
        raise TicketError("malformed ticket")
    body, sig = token.rsplit(".", 1)
    if not hmac.compare_digest(sig, _sign(key, body)):
        raise TicketError("bad signature")
    cam, viewer, expires_ms, nonce = int(m[1]), int(m[2]), int(m[3]), m[4]
    if cam != camera_id:
        raise TicketError("ticket is for another camera")
    if expires_ms <= clock.time() * 1000:
        raise TicketError("ticket expired")
    return Ticket(cam, viewer, expires_ms, nonce, token)
