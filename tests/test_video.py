"""Video: cameras, live view behind tickets, snapshots and clips on events, the viewing
audit, retention. A real fake camera (GStreamer RTSP) and ffmpeg run for these tests."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import av
from PIL import Image

from anxin.clock import clock
from anxin.scheduler import run_job_once
from models import AuditLog, Camera, CaptureKind, CaptureState, StaffRoleName, VideoCapture
from tests.devices import register_device, simulator
from tests.helpers import error_code, make_staff, make_world, staff_headers
from tests.stack import Stack
from tests.test_faces_support import eventually
from tests.video_support import (
    CAM_PASSWORD,
    add_camera,
    decode_frames,
    looks_like_colour_bars,
)
from video.fake_camera import FakeCamera
from video.service import PURGE_JOB, VIDEO

V1 = "/api/v1"


async def _staff(stack: Stack, world, *roles: StaffRoleName) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return await staff_headers(stack, await make_staff(world.community, *roles))


async def _ticket(stack: Stack, camera_id: int, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    r = await stack.client.post(
        f"{V1}/staff/cameras/{camera_id}/live", json={"reason": "核查东门异常"}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _captures(row_filter: dict, count: int) -> list[VideoCapture]:  # type: ignore[type-arg]
    async def done() -> list[VideoCapture] | None:
        rows = await VideoCapture.filter(**row_filter).order_by("id")
        finished = [r for r in rows if r.state != CaptureState.PENDING]
        return rows if len(rows) >= count and len(finished) == len(rows) else None

    return await eventually(done, timeout=30)


# ---------------------------------------------------------------- embedded default


async def test_without_a_media_server_video_says_so(stack: Stack) -> None:
    world = await make_world()
    admin_h = await _staff(stack, world, StaffRoleName.ADMIN)
    r = await stack.client.post(
        f"{V1}/staff/communities/{world.community.id}/cameras",
        json={
            "name": "大门",
            "main_url": "rtsp://cam:s3cret@gate-cam.invalid:554/Streaming/Channels/101",
            "sub_url": "rtsp://gate-cam.invalid:554/Streaming/Channels/102",
        },
        headers=admin_h,
    )
    assert r.status_code == 201, r.text
    cam = r.json()
    # Credentials pasted in the URL were moved out and encrypted; never shown again.
    assert cam["main_url"] == "rtsp://gate-cam.invalid:554/Streaming/Channels/101"
    assert cam["has_credentials"] and "s3cret" not in r.text
    row = await Camera.get(id=cam["id"])
    assert row.credentials_enc and b"s3cret" not in row.credentials_enc
    listing = await stack.client.get(
        f"{V1}/staff/communities/{world.community.id}/cameras", headers=admin_h
    )
    assert listing.json()["media_server"] is None
    assert "流媒体" in listing.json()["message"]
    r = await stack.client.post(
        f"{V1}/staff/cameras/{cam['id']}/live", json={"reason": "查看"}, headers=admin_h
    )
    assert r.status_code == 503 and error_code(r) == "no_media_server"
    assert not await AuditLog.filter(action="video.live", target_id=str(cam["id"])).exists()


async def test_camera_input_is_checked(stack: Stack) -> None:
    world = await make_world()
    other = await make_world()
    admin_h = await _staff(stack, world, StaffRoleName.ADMIN)
    url = f"{V1}/staff/communities/{world.community.id}/cameras"
    for bad in ("http://x/a", "rtsp://", "rtsp://host:99999/x", "rtsp://h /x"):
        r = await stack.client.post(url, json={"name": "c", "main_url": bad}, headers=admin_h)
        assert r.status_code == 422, (bad, r.text)
    foreign = await register_device(
        stack, other.community.id, await _staff(stack, other, StaffRoleName.ADMIN), kind="fence",
        methods=[],
    )  # fmt: skip
    r = await stack.client.post(
        url,
        json={"name": "c", "main_url": "rtsp://10.0.0.1/x", "door_ids": [foreign["id"]]},
        headers=admin_h,
    )
    assert r.status_code == 404  # another community's door does not exist here


# ---------------------------------------------------------------- live view


async def test_live_view_needs_a_valid_ticket_for_that_camera(
    vstack: Stack, camera: FakeCamera
) -> None:
    stack = vstack
    world = await make_world()
    admin_h = await _staff(stack, world, StaffRoleName.ADMIN)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    guard_h = await staff_headers(stack, guard)
    cam = await add_camera(stack, world.community.id, admin_h, camera)
    other_cam = await add_camera(stack, world.community.id, admin_h, camera, ready=False)

    live = await _ticket(stack, cam["id"], guard_h)
    assert "hls" in live["protocols"]
    playlist = await stack.client.get(live["hls_url"])
    assert playlist.status_code == 200, playlist.text
    segments = [ln for ln in playlist.text.splitlines() if ln and not ln.startswith("#")]
    assert segments
    seg = await stack.client.get(live["hls_url"].replace("index.m3u8", segments[-1]))
    assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp2t"
    frames = decode_frames(seg.content, "mpegts")
    assert frames and (frames[0].width, frames[0].height) == (640, 360)  # the sub-stream

    # The viewing is in the audit log: who, which camera, what time range, why.
    row = await AuditLog.filter(action="video.live", target_id=str(cam["id"])).first()
    assert row is not None and row.actor_type == "staff" and row.actor_id == guard.id
    assert row.details["reason"] == "核查东门异常"
    assert row.details["from"] < row.details["to"]

    base = f"{V1}/video/live/{cam['id']}"
    token = live["ticket"]
    other_live = await _ticket(stack, other_cam["id"], guard_h)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in ("nothing", forged, other_live["ticket"]):
        for tail in ("index.m3u8", segments[-1]):
            r = await stack.client.get(f"{base}/{bad}/{tail}")
            assert r.status_code == 403, (bad, tail, r.status_code)
            assert error_code(r) == "ticket_invalid" and b"#EXTM3U" not in r.content
    # A segment name outside the live edge is not served, even with a good ticket.
    r = await stack.client.get(f"{base}/{token}/s999999999.ts")
    assert r.status_code == 404
    # Expired: the same ticket after its lifetime gets nothing.
    clock.advance(live["expires_in"] + 1)
    for tail in ("index.m3u8", segments[-1]):
        r = await stack.client.get(f"{base}/{token}/{tail}")
        assert r.status_code == 403 and error_code(r) == "ticket_invalid"


async def test_who_may_watch(vstack: Stack, camera: FakeCamera) -> None:
    stack = vstack
    world = await make_world()
    other = await make_world()
    admin_h = await _staff(stack, world, StaffRoleName.ADMIN)
    cam = await add_camera(stack, world.community.id, admin_h, camera, ready=False)
    url = f"{V1}/staff/cameras/{cam['id']}/live"
    approver_h = await _staff(stack, world, StaffRoleName.APPROVER)
    outsider_h = await _staff(stack, other, StaffRoleName.ADMIN, StaffRoleName.GUARD)
    assert (
        await stack.client.post(url, json={"reason": "看看"}, headers=approver_h)
    ).status_code == 403
    assert (
        await stack.client.post(url, json={"reason": "看看"}, headers=outsider_h)
    ).status_code == 404
    assert (await stack.client.post(url, json={"reason": "看看"})).status_code == 401
    r = await stack.client.post(url, json={"reason": " "}, headers=admin_h)
    assert r.status_code == 422 and error_code(r) == "reason_required"
    assert not await AuditLog.filter(action="video.live", target_id=str(cam["id"])).exists()


async def test_camera_health(vstack: Stack, camera: FakeCamera) -> None:
    stack = vstack
    world = await make_world()
    admin_h = await _staff(stack, world, StaffRoleName.ADMIN)
    good = await add_camera(stack, world.community.id, admin_h, camera)
    bad = await add_camera(
        stack, world.community.id, admin_h, camera, password="wrong-pass", ready=False
    )
    video = stack.runtime.get(VIDEO)

    async def bad_known() -> bool:
        await video.write_health()
        row = await Camera.get(id=bad["id"])
        return bool(row.last_error)

    await eventually(bad_known, timeout=15)
    g = (await stack.client.get(f"{V1}/staff/cameras/{good['id']}", headers=admin_h)).json()
    b = (await stack.client.get(f"{V1}/staff/cameras/{bad['id']}", headers=admin_h)).json()
    assert g["health"]["reachable"] and g["health"]["last_frame_at"]
    assert not b["health"]["reachable"] and "401" in b["health"]["error"]
    assert "wrong-pass" not in str(b) and CAM_PASSWORD not in str(g)
    # Disabled: the reader closes, nothing can be watched.
    r = await stack.client.patch(
        f"{V1}/staff/cameras/{bad['id']}", json={"enabled": False}, headers=admin_h
    )
    assert r.status_code == 200 and r.json()["live_protocols"] == []
    await video.sync()
    assert video.backend.health(bad["id"]) is None


# ---------------------------------------------------------------- captures


async def test_access_event_at_a_camera_door_gets_a_snapshot(
    vstack: Stack, camera: FakeCamera
) -> None:
    stack = vstack
    world = await make_world()
    cid = world.community.id
    admin_h = await _staff(stack, world, StaffRoleName.ADMIN)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    guard_h = await staff_headers(stack, guard)
    gate = await register_device(stack, cid, admin_h, kind="unit_door", unit_id=world.units[0].id)
    cam = await add_camera(stack, cid, admin_h, camera, door_ids=[gate["id"]])
    async with simulator(stack, gate) as sim:
        await sim.swipe_card("C-404")  # refused: still an access event, still a snapshot
        rows = await _captures({"camera_id": cam["id"]}, 1)
    (snap,) = rows
    assert snap.kind == CaptureKind.SNAPSHOT and snap.state == CaptureState.READY, snap.error
    assert snap.access_event_id is not None

    listed = await stack.client.get(
        f"{V1}/staff/communities/{cid}/video/captures",
        params={"access_event_id": snap.access_event_id},
        headers=guard_h,
    )
    assert [c["id"] for c in listed.json()["items"]] == [snap.id]
    url = f"{V1}/staff/video/captures/{snap.id}/content"
    r = await stack.client.get(url, headers=guard_h)
    assert r.status_code == 422  # no reason, no footage
    r = await stack.client.get(url, params={"reason": "刷卡被拒，核实身份"}, headers=guard_h)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG" and img.size == (640, 360)
    assert looks_like_colour_bars(r.content)
    # Stored encrypted: the file on disk is not a JPEG.
    video = stack.runtime.get(VIDEO)
    raw = video.store._path(snap.ref).read_bytes()
    assert not raw.startswith(b"\xff\xd8") and b"JFIF" not in raw
    audit = await AuditLog.get(action="video.snapshot.read", target_id=str(snap.id))
    assert audit.actor_id == guard.id and audit.details["camera_id"] == cam["id"]
    assert audit.details["reason"] == "刷卡被拒，核实身份" and audit.details["from"]


async def test_alarm_gets_a_clip_with_pre_roll_and_retention(
    vstack: Stack, camera: FakeCamera
) -> None:
    stack = vstack
    world = await make_world()
    cid = world.community.id
    admin = await make_staff(world.community, StaffRoleName.ADMIN)
    admin_h = await staff_headers(stack, admin)
    guard_h = await _staff(stack, world, StaffRoleName.GUARD)
    r = await stack.client.put(
        f"{V1}/staff/communities/{cid}/video/policy",
        json={"clip_pre_s": 3, "clip_post_s": 2, "clip_retention_days": 3},
        headers=admin_h,
    )
    assert r.status_code == 200, r.text
    gate = await register_device(stack, cid, admin_h, kind="unit_door", unit_id=world.units[0].id)
    cam = await add_camera(stack, cid, admin_h, camera, door_ids=[gate["id"]])
    await asyncio.sleep(3.5)  # let the buffer hold the pre-roll
    async with simulator(stack, gate) as sim:
        await sim.door_forced()
        rows = await _captures({"camera_id": cam["id"], "alarm_id__not_isnull": True}, 2)
    clip = next(r for r in rows if r.kind == CaptureKind.CLIP)
    assert clip.state == CaptureState.READY, clip.error
    assert (clip.end_at - clip.start_at).total_seconds() == 5
    r = await stack.client.get(
        f"{V1}/staff/video/captures/{clip.id}/content",
        params={"reason": "强行开门报警复核"},
        headers=guard_h,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(r.content)) as container:
        stream = container.streams.video[0]
        seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(seconds - 5) <= 1.1, seconds  # 3 s before + 2 s after, cut at keyframes
    assert frames >= 4 * 15 * 0.8
    audit = await AuditLog.get(action="video.clip.read", target_id=str(clip.id))
    assert audit.details["reason"] == "强行开门报警复核"
    assert audit.details["from"] < audit.details["to"]

    # Admins read the viewing audit; guards may not.
    r = await stack.client.get(f"{V1}/staff/communities/{cid}/video/viewings", headers=guard_h)
    assert r.status_code == 403
    r = await stack.client.get(f"{V1}/staff/communities/{cid}/video/viewings", headers=admin_h)
    assert r.status_code == 200
    assert [(v["action"], v["capture_id"], v["reason"]) for v in r.json()["items"]] == [
        ("video.clip.read", clip.id, "强行开门报警复核")
    ]
    viewed = r.json()["items"][0]
    assert viewed["timezone"] == world.community.timezone and viewed["from"] < viewed["to"]
    by_camera = await stack.client.get(
        f"{V1}/staff/communities/{cid}/video/viewings",
        params={"camera_id": clip.camera_id, "limit": 1},
        headers=admin_h,
    )
    assert [v["capture_id"] for v in by_camera.json()["items"]] == [clip.id]
    # A community that does not exist is 404 (its zone is never read first).
    r = await stack.client.get(
        f"{V1}/staff/communities/{2**31 - 2}/video/viewings", headers=admin_h
    )
    assert r.status_code == 404

    # Retention: this community keeps clips 3 days; snapshots follow the snapshot rule.
    video = stack.runtime.get(VIDEO)
    path = video.store._path(clip.ref)
    clock.advance(timedelta(days=2, hours=23).total_seconds())
    await run_job_once(PURGE_JOB, stack.runtime)
    assert (await VideoCapture.get(id=clip.id)).state == CaptureState.READY
    clock.advance(timedelta(hours=2).total_seconds())
    await run_job_once(PURGE_JOB, stack.runtime)
    assert (await VideoCapture.get(id=clip.id)).state == CaptureState.DELETED
    assert not path.exists()
    guard_h = await _staff(stack, world, StaffRoleName.GUARD)  # the old login expired too
    r = await stack.client.get(
        f"{V1}/staff/video/captures/{clip.id}/content", params={"reason": "再看"}, headers=guard_h
    )
    assert r.status_code == 404


async def test_a_capture_left_pending_by_a_stopped_process_is_marked_failed(stack: Stack) -> None:
    world = await make_world()
    now = clock.now()
    stale = await VideoCapture.create(
        community_id=world.community.id, camera_id=1, kind=CaptureKind.CLIP,
        start_at=now - timedelta(minutes=20), end_at=now - timedelta(minutes=10),
        dedupe_key=f"test:stale:{world.community.id}",
    )  # fmt: skip
    fresh = await VideoCapture.create(
        community_id=world.community.id, camera_id=1, kind=CaptureKind.CLIP,
        start_at=now - timedelta(seconds=10), end_at=now + timedelta(seconds=10),
        dedupe_key=f"test:fresh:{world.community.id}",
    )  # fmt: skip
    await run_job_once(PURGE_JOB, stack.runtime)
    stale_row, fresh_row = await VideoCapture.get(id=stale.id), await VideoCapture.get(id=fresh.id)
    assert stale_row.state == CaptureState.FAILED and "interrupted" in stale_row.error
    assert fresh_row.state == CaptureState.PENDING


async def test_a_residents_export_lists_their_captures_and_who_opened_them(stack: Stack) -> None:
    from domain.video.store import capture_store
    from models import AccessEvent, AccessMethod, AccessResult
    from tests.helpers import approved_resident

    world = await make_world()
    cid = world.community.id
    admin_h = await _staff(stack, world, StaffRoleName.ADMIN)
    guard = await make_staff(world.community, StaffRoleName.GUARD)
    guard_h = await staff_headers(stack, guard)
    app = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await app.get(f"{V1}/me")).json()["id"]
    event = await AccessEvent.create(
        community_id=cid, method=AccessMethod.CARD, result=AccessResult.GRANTED,
        reason="resident", resident_id=me,
    )  # fmt: skip
    now = clock.now()
    cap = await VideoCapture.create(
        community_id=cid, camera_id=1, kind=CaptureKind.SNAPSHOT, access_event_id=event.id,
        start_at=now, end_at=now, dedupe_key=f"export-test:{event.id}",
    )  # fmt: skip
    store = capture_store(stack.settings)
    cap.ref = store.ref_for(cid, cap.id, "snapshot", cap.created_at)
    store.save(cap.ref, b"\xff\xd8x\xff\xd9")
    cap.state = CaptureState.READY
    await cap.save(update_fields=["ref", "state"])
    r = await stack.client.get(
        f"{V1}/staff/video/captures/{cap.id}/content", params={"reason": "住户投诉核实"},
        headers=guard_h,
    )  # fmt: skip
    assert r.status_code == 200
    export = (await app.get(f"{V1}/me/data-export")).json()
    (item,) = export["camera_captures"]
    assert item["access_event_id"] == event.id and item["kind"] == "snapshot"
    assert [(o["staff_id"], o["reason"]) for o in item["opened_by"]] == [(guard.id, "住户投诉核实")]
