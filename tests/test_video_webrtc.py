"""Live view over WebRTC: Janus relays the camera's H.264 sub-stream to a viewer holding a
ticket (aiortc plays the browser here); nothing without one; the session ends with it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from anxin.clock import clock
from models import StaffRoleName
from tests.helpers import error_code, make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import eventually
from tests.video_support import add_camera
from video.fake_camera import FakeCamera
from video.service import VIDEO

V1 = "/api/v1"


class Viewer:
    """A WebRTC viewer: answers the server's offer, collects decoded frames."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.frames: asyncio.Queue[Any] = asyncio.Queue()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        async def pump() -> None:
            try:
                while True:
                    await self.frames.put(await track.recv())
            except MediaStreamError:
                await self.frames.put(None)

        asyncio.ensure_future(pump())

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        await self.pc.close()


async def _live(stack: Stack, camera_id: int, headers: dict[str, str]) -> dict[str, Any]:
    r = await stack.client.post(
        f"{V1}/staff/cameras/{camera_id}/live", json={"reason": "巡查大门"}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_webrtc_viewer_with_ticket_gets_video_until_it_expires(
    vstack: Stack, camera: FakeCamera
) -> None:
    stack = vstack
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    guard_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.GUARD))
    cam = await add_camera(stack, world.community.id, admin_h, camera)
    other = await add_camera(stack, world.community.id, admin_h, camera, ready=False)
    live = await _live(stack, cam["id"], guard_h)
    assert live["protocols"] == ["webrtc", "hls"]
    url = f"{V1}/video/live/{cam['id']}/webrtc"

    # Refused: no ticket, another camera's ticket, someone else's ticket, an expired one.
    other_live = await _live(stack, other["id"], guard_h)
    for body, headers in (
        ({"ticket": "v1.nothing"}, guard_h),
        ({"ticket": other_live["ticket"]}, guard_h),
        ({"ticket": live["ticket"]}, admin_h),  # issued to the guard
    ):
        r = await stack.client.post(url, json=body, headers=headers)
        assert r.status_code == 403 and "sdp" not in r.json(), r.text

    r = await stack.client.post(url, json={"ticket": live["ticket"]}, headers=guard_h)
    assert r.status_code == 200, r.text
    offer = r.json()
    assert "H264" in offer["sdp"]  # relayed as the camera sends it: no transcoding
    viewer = Viewer()
    try:
        answer = await viewer.answer(offer["sdp"])
        r = await stack.client.post(
            f"{url}/{offer['session_id']}/answer",
            json={"ticket": live["ticket"], "sdp": answer},
            headers=guard_h,
        )
        assert r.status_code == 200, r.text
        frame = await asyncio.wait_for(viewer.frames.get(), 20)
        assert frame is not None and (frame.width, frame.height) == (640, 360)

        # The ticket expires: the server ends the session, the media stops.
        gateway = stack.runtime.get(VIDEO).backend.janus
        clock.advance(live["expires_in"] + 1)
        await eventually(lambda: offer["session_id"] not in gateway.viewers, timeout=5)
        await asyncio.sleep(1.0)
        while not viewer.frames.empty():
            viewer.frames.get_nowait()
        try:
            late = await asyncio.wait_for(viewer.frames.get(), 3)
        except TimeoutError:
            late = None
        assert late is None, "frames kept coming after the ticket expired"
        r = await stack.client.post(url, json={"ticket": live["ticket"]}, headers=guard_h)
        assert r.status_code == 403 and error_code(r) == "ticket_invalid"
    finally:
        await viewer.close()
