"""The demo's camera: the fake RTSP camera watching the demo's main gate, so the console's
live view, snapshots and clips have moving pictures without hardware."""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

from anxin.bus import InProcessBus
from anxin.crypto import keyring_from_settings
from auth.permissions import Principal
from domain.video import cameras
from models import Camera, Device, StaffRoleName
from video.fake_camera import FakeCamera, FakeCameraUnavailable, available, fake_camera

DEMO_CAMERA = "南门摄像头"
DEMO_GATE_UID = "demo-main-gate"


async def start(stack: contextlib.AsyncExitStack) -> tuple[FakeCamera | None, str]:
    """The running fake camera (stopped with `stack`), or None and why not."""
    if shutil.which("ffmpeg") is None:
        return None, "ffmpeg not installed (apt-get install ffmpeg)"
    if not available():
        return None, "fake camera needs python3-gi gir1.2-gst-rtsp-server-1.0 (apt-get)"
    try:
        cam = await stack.enter_async_context(
            fake_camera(user="admin", password="demo-camera", pattern="ball")
        )
    except FakeCameraUnavailable as exc:
        return None, str(exc)
    return cam, ""


async def seed(settings: Any, community_id: int, cam: FakeCamera) -> Camera:
    """The demo camera at the main gate, pointed at this run's fake camera (its port
    changes from run to run)."""
    system = Principal("staff", 0, roles={community_id: {StaffRoleName.ADMIN}})
    keyring, bus = keyring_from_settings(settings), InProcessBus()
    gate = await Device.get_or_none(device_uid=DEMO_GATE_UID)
    existing = await Camera.get_or_none(community_id=community_id, name=DEMO_CAMERA)
    fields: dict[str, Any] = {
        "main_url": cam.main_url,
        "sub_url": cam.sub_url,
        "username": cam.user,
        "password": cam.password,
        "door_ids": [gate.id] if gate else [],
    }
    if existing is None:
        return await cameras.create_camera(
            system, community_id, keyring, bus, name=DEMO_CAMERA, place="小区南门", **fields
        )
    return await cameras.update_camera(system, existing.id, keyring, bus, fields)
