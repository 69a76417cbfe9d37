"""The local media backend: Debian's ffmpeg reads every enabled camera into a rolling
buffer (video/recorder.py), and Janus, when configured, serves WebRTC (video/janus.py).
HLS is served from the buffer by the API after it checked the viewer's ticket."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from domain.video.cameras import CameraSource
from models import VideoCodec
from video.backend import CameraHealth, MediaError, WebRtcOffer
from video.recorder import CameraRecorder


class LocalMediaBackend:
    name = "local"
    configured = True

    def __init__(self, settings: Any, janus: Any = None) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir) / "video-buffer"
        self.recorders: dict[int, CameraRecorder] = {}
        self.sources: dict[int, CameraSource] = {}
        self.janus = janus  # video.janus.JanusGateway or None (HLS only)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.janus is not None:
            await self.janus.start()

    async def stop(self) -> None:
        async with self._lock:
            for rec in list(self.recorders.values()):
                await rec.stop()
            self.recorders.clear()
        if self.janus is not None:
            await self.janus.stop()

    async def sync(self, sources: list[CameraSource]) -> None:
        async with self._lock:
            wanted = {s.camera_id: s for s in sources}
            for cid in list(self.recorders):
                rec = self.recorders[cid]
                if cid not in wanted or wanted[cid] != rec.source:
                    await rec.stop()
                    del self.recorders[cid]
            for cid, source in wanted.items():
                if cid not in self.recorders:
                    rec = CameraRecorder(
                        source,
                        self.root,
                        ffmpeg=self.settings.video_ffmpeg,
                        segment_s=self.settings.video_segment_s,
                        buffer_s=self.settings.video_buffer_s,
                    )
                    await rec.start()
                    self.recorders[cid] = rec
            self.sources = wanted
            if self.janus is not None:
                webrtc = [s for s in sources if s.sub_codec == VideoCodec.H264]
                await self.janus.sync(webrtc)

    def _rec(self, camera_id: int) -> CameraRecorder:
        rec = self.recorders.get(camera_id)
        if rec is None:
            raise MediaError("camera is not open (disabled, or not synced yet)")
        return rec

    def health(self, camera_id: int) -> CameraHealth | None:
        rec = self.recorders.get(camera_id)
        return None if rec is None else rec.health()

    def live_protocols(self, camera_id: int) -> list[str]:
        source = self.sources.get(camera_id)
        if source is None:
            return []
        if source.sub_codec != VideoCodec.H264:
            return []  # browsers cannot decode H.265: nothing to offer without transcoding
        return (["webrtc"] if self.janus is not None else []) + ["hls"]

    async def wait_ready(self, camera_id: int, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        await self._rec(camera_id).wait_ready(timeout)

    async def snapshot(self, camera_id: int) -> tuple[bytes, datetime]:
        return await self._rec(camera_id).snapshot()

    async def clip(self, camera_id: int, start: datetime, end: datetime) -> bytes:
        return await self._rec(camera_id).clip(start, end)

    async def hls_playlist(self, camera_id: int) -> str:
        return self._rec(camera_id).live_playlist()

    async def hls_segment(self, camera_id: int, name: str) -> bytes:
        return await asyncio.to_thread(self._rec(camera_id).live_segment, name)

    def _janus(self) -> Any:
        if self.janus is None:
            raise MediaError("WebRTC is not configured (no Janus): use HLS")
        return self.janus

    async def webrtc_offer(self, camera_id: int, expires_at_s: float) -> WebRtcOffer:
        if "webrtc" not in self.live_protocols(camera_id):
            raise MediaError("this camera cannot be watched over WebRTC")
        return await self._janus().offer(camera_id, expires_at_s)

    async def webrtc_answer(self, session_id: str, camera_id: int, sdp: str) -> None:
        await self._janus().answer(session_id, camera_id, sdp)

    async def webrtc_close(self, session_id: str) -> None:
        if self.janus is not None:
            with contextlib.suppress(MediaError):
                await self.janus.close(session_id)
