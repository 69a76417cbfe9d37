"""The console's video pages over HTTP: no media server said plainly; captures listed per
access event and opened only with a reason and the session's CSRF token (audited)."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.video.store import capture_store
from models import AuditLog, Camera, CaptureKind, CaptureState, StaffRoleName, VideoCapture
from tests.console_helpers import console_client
from tests.helpers import make_staff, make_world
from tests.stack import Stack


async def test_video_pages_without_a_media_server_and_captures(stack: Stack) -> None:
    world = await make_world()
    cid = world.community.id
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    await Camera.create(uid=f"c{cid}x", community_id=cid, name="北门", main_url="rtsp://h/x")
    now = datetime.now(UTC)
    cap = await VideoCapture.create(
        community_id=cid, camera_id=1, kind=CaptureKind.SNAPSHOT, access_event_id=4242,
        start_at=now, end_at=now, dedupe_key=f"console-test:{cid}",
    )  # fmt: skip
    store = capture_store(stack.settings)
    cap.ref = store.ref_for(cid, cap.id, "snapshot", cap.created_at)
    store.save(cap.ref, b"\xff\xd8console\xff\xd9")
    cap.state = CaptureState.READY
    await cap.save(update_fields=["ref", "state"])

    async with console_client(stack, guard.username) as (client, csrf):
        page = await client.get(f"/console/c/{cid}/video")
        assert page.status_code == 200
        assert "data-no-media-server" in page.text and "北门" in page.text
        assert "查看实时画面" not in page.text  # nothing to watch without a media server

        listed = await client.get(
            f"/console/c/{cid}/video/captures", params={"access_event_id": 4242}
        )
        assert listed.status_code == 200 and f'data-capture="{cap.id}"' in listed.text

        url = f"/console/c/{cid}/video/captures/{cap.id}"
        r = await client.post(url, data={"reason": "核实刷卡人"})  # no CSRF token
        assert r.status_code == 403
        r = await client.post(url, data={"reason": "", "csrf_token": csrf})
        assert r.status_code == 422
        assert not await AuditLog.filter(
            action="video.snapshot.read", target_id=str(cap.id)
        ).exists()
        r = await client.post(url, data={"reason": "核实刷卡人", "csrf_token": csrf})
        assert r.status_code == 200 and r.content == b"\xff\xd8console\xff\xd9"
        row = await AuditLog.get(action="video.snapshot.read", target_id=str(cap.id))
        assert row.actor_id == guard.id and row.details["reason"] == "核实刷卡人"
