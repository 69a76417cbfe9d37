"""The one interface every media backend implements, so a deployment can swap ours (ffmpeg
+ Janus from Debian) for ZLMediaKit, MediaMTX or a GB/T 28181 platform without touching
the rules in domain/video.

Tickets are checked by the caller (the API checks the signed ticket before asking the
backend for a playlist, a segment or a WebRTC session); a backend that serves viewers
directly must check the same ticket (domain.video.tickets.verify, HMAC with the shared
video secret) before it serves a byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.video.cameras import CameraSource


class MediaError(Exception):
    """The media path failed (camera unreachable, nothing buffered yet, server down)."""


class NoMediaServer(MediaError):
    """No media server is configured (the embedded default)."""


@dataclass(frozen=True)
class CameraHealth:
    reachable: bool
    last_frame_at: datetime | None
    error: str = ""


@dataclass(frozen=True)
class WebRtcOffer:
    session_id: str
    sdp: str  # the server's offer; the browser answers


class MediaBackend(Protocol):
    name: str
    configured: bool  # False: the "no media server" backend

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def sync(self, sources: list[CameraSource]) -> None:
        """Keep exactly these cameras open (readers, mountpoints)."""

    def health(self, camera_id: int) -> CameraHealth | None: ...

    def live_protocols(self, camera_id: int) -> list[str]:
        """What a browser can use for this camera, best first: "webrtc", "hls"."""

    async def snapshot(self, camera_id: int) -> tuple[bytes, datetime]:
        """A JPEG of the newest frame and the time it was taken."""

    async def clip(self, camera_id: int, start: datetime, end: datetime) -> bytes:
        """An MP4 of [start, end] (waits for `end` to pass), cut from the rolling buffer."""

    async def hls_playlist(self, camera_id: int) -> str:
        """The live playlist; segment URIs are bare names for `hls_segment`."""

    async def hls_segment(self, camera_id: int, name: str) -> bytes: ...

    async def webrtc_offer(self, camera_id: int, expires_at_s: float) -> WebRtcOffer:
        """A WebRTC session for one viewer, ended by the backend at `expires_at_s`."""

    async def webrtc_answer(self, session_id: str, camera_id: int, sdp: str) -> None: ...

    async def webrtc_close(self, session_id: str) -> None: ...


class NoMediaBackend:
    """The embedded default: no media server. Every video feature answers, clearly, that
    none is configured; captures are not planned at all."""

    name = "none"
    configured = False
    MESSAGE = "no media server is configured (set ANXIN_VIDEO_BACKEND, see docs/video.md)"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def sync(self, sources: list[CameraSource]) -> None:
        return None

    def health(self, camera_id: int) -> CameraHealth | None:
        return None

    def live_protocols(self, camera_id: int) -> list[str]:
        return []

    def _none(self) -> NoMediaServer:
        return NoMediaServer(self.MESSAGE)

    async def snapshot(self, camera_id: int) -> tuple[bytes, datetime]:
        raise self._none()

    async def clip(self, camera_id: int, start: datetime, end: datetime) -> bytes:
        raise self._none()

    async def hls_playlist(self, camera_id: int) -> str:
        raise self._none()

    async def hls_segment(self, camera_id: int, name: str) -> bytes:
        raise self._none()

    async def webrtc_offer(self, camera_id: int, expires_at_s: float) -> WebRtcOffer:
        raise self._none()

    async def webrtc_answer(self, session_id: str, camera_id: int, sdp: str) -> None:
        raise self._none()

    async def webrtc_close(self, session_id: str) -> None:
        return None
