"""The console's live view plays the fake camera in Chromium (WebRTC through Janus), after
the guard gave a reason; the viewing is in the audit log."""

from __future__ import annotations

from typing import Any

from models import AuditLog, StaffRoleName
from tests.browser.support import assert_accessible, shot, sign_in
from tests.helpers import make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.video_support import add_camera
from video.fake_camera import FakeCamera
from video.service import VIDEO


async def _watch(
    stack: Stack, camera: FakeCamera, open_page: Any, reason: str, before: Any = None
) -> tuple[Any, Any, dict[str, Any]]:
    """A guard signs in, gives `reason` for a camera and opens its live view."""
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    cam = await add_camera(stack, cid, admin_h, camera)
    if before is not None:
        before()
    page = await open_page()
    await sign_in(page, guard.username)
    await page.goto(f"/console/c/{cid}/video")
    card = page.locator(f"[data-camera='{cam['id']}']")
    await card.locator("input[name=reason]").fill(reason)
    await card.locator("button[type=submit]").click()
    await page.wait_for_selector("[data-live-player]")
    return page, guard, cam


async def test_guard_watches_a_gate_live_in_the_console(
    vstack: Stack, camera: FakeCamera, open_page: Any
) -> None:
    stack = vstack
    page, guard, cam = await _watch(stack, camera, open_page, "夜间巡查东门")
    # Playing means frames decoded and time advancing, not just an element on the page.
    await page.wait_for_function(
        """() => { const v = document.querySelector('[data-live-player] video');
                   return v && v.readyState >= 2 && v.videoWidth === 640
                          && v.currentTime > 0.5; }""",
        timeout=30_000,
    )
    mode = await page.get_attribute("[data-live-player]", "data-playing")
    assert mode == "webrtc"
    await shot(page, "video-live", backend=stack.backend)
    await assert_accessible(page, "live view")

    row = await AuditLog.filter(action="video.live", actor_id=guard.id).first()
    assert row is not None and row.details["reason"] == "夜间巡查东门"
    assert row.details["camera_id"] == cam["id"]


async def test_live_view_falls_back_to_hls(
    vstack: Stack, camera: FakeCamera, open_page: Any
) -> None:
    """A camera Janus cannot relay (no WebRTC offered) still plays, over HLS from the buffer."""
    backend = vstack.runtime.get(VIDEO).backend
    janus = backend.janus

    def without_janus() -> None:  # as on a site without Janus
        backend.janus = None

    try:
        page, _, _ = await _watch(vstack, camera, open_page, "回看确认", without_janus)
        await page.wait_for_function(
            """() => { const v = document.querySelector('[data-live-player] video');
                       return v && v.readyState >= 2 && v.videoWidth === 640; }""",
            timeout=30_000,
        )
        assert await page.get_attribute("[data-live-player]", "data-playing") == "hls"
    finally:
        backend.janus = janus


async def test_access_log_links_to_the_camera_snapshot(
    vstack: Stack, camera: FakeCamera, open_page: Any
) -> None:
    """A refused card at a camera door: the access log links to the camera's snapshot, which
    opens only after a reason is given (and is then in the audit log)."""
    from models import CaptureState, VideoCapture
    from tests.devices import register_device, simulator
    from tests.test_faces_support import eventually

    stack = vstack
    world = await make_world()
    cid = world.community.id
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    gate = await register_device(stack, cid, admin_h, kind="unit_door", unit_id=world.units[0].id)
    cam = await add_camera(stack, cid, admin_h, camera, door_ids=[gate["id"]])
    async with simulator(stack, gate) as sim:
        await sim.swipe_card("C-777")

        async def ready() -> VideoCapture | None:
            return await VideoCapture.get_or_none(camera_id=cam["id"], state=CaptureState.READY)

        snap = await eventually(ready, timeout=30)

    page = await open_page()
    await sign_in(page, guard.username)
    await page.goto(f"/console/c/{cid}/access")
    link = page.locator(f"tr[data-event='{snap.access_event_id}'] a.camera-link")
    await link.click()
    await page.wait_for_selector(f"[data-capture='{snap.id}']")
    row = page.locator(f"[data-capture='{snap.id}']")
    await row.locator("input[name=reason]").fill("核实被拒刷卡")
    async with page.expect_popup() as popup_info:
        await row.locator("button[type=submit]").click()
    popup = await popup_info.value
    await popup.wait_for_load_state()
    size = await popup.evaluate(
        "() => { const i = document.querySelector('img');"
        " return i && [i.naturalWidth, i.naturalHeight]; }"
    )
    assert size == [640, 360]
    audit = await AuditLog.get(action="video.snapshot.read", target_id=str(snap.id))
    assert audit.actor_id == guard.id and audit.details["reason"] == "核实被拒刷卡"
