"""Fixtures for the video tests: the fake RTSP camera (Debian GStreamer, started here on a
free port) and the service on both backends with the local media backend."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest
from PIL import Image

from models import Camera
from tests.stack import Stack
from video.fake_camera import FakeCamera, FakeCameraUnavailable, fake_camera
from video.service import VIDEO, VideoService, build_backend

CAM_USER, CAM_PASSWORD = "admin", "cam-pass-7788"
# Short clips keep the suite fast; the buffer still holds more than the pre-roll.
VIDEO_SETTINGS: dict[str, Any] = {
    "video_backend": "local",
    "video_buffer_s": 12,
    "video_clip_pre_s": 2,
    "video_clip_post_s": 2,
    "video_ticket_ttl_s": 120,
    "video_janus": "managed",  # Janus on free loopback ports, for WebRTC
}


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"video test prerequisites missing under CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
async def camera() -> AsyncIterator[FakeCamera]:
    try:
        async with fake_camera(user=CAM_USER, password=CAM_PASSWORD) as cam:
            yield cam
    except FakeCameraUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture
async def vstack(stack: Stack) -> AsyncIterator[Stack]:
    """The shared service (both backends) with the local media backend plugged in for one
    test: ffmpeg readers, the rolling buffer, HLS. One Tortoise app per process, so the
    media backend is swapped into the running stack rather than a second app started."""
    for binary in ("ffmpeg", "janus"):
        if shutil.which(binary) is None:
            _unavailable(f"{binary} not installed (apt-get install {binary})")
    # Cameras other tests left in the shared database (unreachable URLs) would each get a
    # reader and a Janus mountpoint attempt here: switch them off first.
    await Camera.filter(enabled=True).update(enabled=False)
    saved = {k: getattr(stack.settings, k) for k in VIDEO_SETTINGS}
    for k, v in VIDEO_SETTINGS.items():
        setattr(stack.settings, k, v)
    service = VideoService(stack.runtime, build_backend(stack.settings))
    await service.start()
    idle = stack.runtime.replace(VIDEO, service)
    try:
        yield stack
    finally:
        await service.stop()
        stack.runtime.replace(VIDEO, idle)
        for k, v in saved.items():
            setattr(stack.settings, k, v)


async def add_camera(
    stack: Stack,
    community_id: int,
    headers: dict[str, str],
    cam: FakeCamera,
    *,
    door_ids: list[int] | None = None,
    password: str = CAM_PASSWORD,
    ready: bool = True,
) -> dict[str, Any]:
    r = await stack.client.post(
        f"/api/v1/staff/communities/{community_id}/cameras",
        json={
            "name": "东门摄像头",
            "place": "东门",
            "main_url": cam.main_url,
            "sub_url": cam.sub_url,
            "username": CAM_USER,
            "password": password,
            "door_ids": door_ids or [],
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    video = stack.runtime.get(VIDEO)
    await video.sync()  # what the camera-changed message does within a second
    if ready:
        await video.backend.wait_ready(r.json()["id"])
    return r.json()


def decode_frames(data: bytes, fmt: str | None = None) -> list[Any]:
    with av.open(io.BytesIO(data), format=fmt) as container:
        return [f for f in container.decode(video=0)]


def looks_like_colour_bars(jpeg: bytes) -> bool:
    """The SMPTE pattern: left to right white, yellow, cyan, green, magenta, red, blue."""
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    w, h = img.size
    y = h // 4
    expected = [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255),
                (255, 0, 0), (0, 0, 255)]  # fmt: skip
    for i, colour in enumerate(expected):
        px = img.getpixel((int((i + 0.5) * w / 7), y))
        if any(abs(a - b) > 60 for a, b in zip(px, colour, strict=True)):
            return False
    return True
