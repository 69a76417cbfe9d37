"""Console authz entries for the video pages (merged into tests/authz_console.py TABLE).

The matrix's stack has no media server: allowed callers of "watch" and of the WebRTC
signalling (with a genuine ticket of their own) get the 503 page after every refusal was
decided; a role that may not watch is refused even holding a genuine ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from domain.video import tickets
from domain.video.store import capture_store
from models import AuditLog, Camera, CaptureKind, CaptureState, VideoCapture
from tests.authz_console import AG, Call, Ctx, Rule, tag

C = "/console/c/{cid}"


async def _camera(ctx: Ctx) -> Camera:
    return await Camera.create(
        uid=tag(8),
        community_id=ctx.world.community.id,
        name=f"cam-{tag()}",
        main_url="rtsp://gate-cam.invalid/main",
    )


async def p_watch(ctx: Ctx, role: str) -> Call:
    cam = await _camera(ctx)
    return Call(
        params={"cid": ctx.world.community.id, "camera_id": cam.id}, form={"reason": "矩阵测试"}
    )


def _ticket(ctx: Ctx, camera_id: int, role: str) -> str:
    """A genuine ticket for this camera, issued to the caller."""
    viewer = ctx.staff[role].id if role in ctx.staff else 1
    return tickets.issue(tickets.ticket_key(ctx.stack.settings), camera_id, viewer, 300).token


async def p_webrtc(ctx: Ctx, role: str) -> Call:
    cam = await _camera(ctx)
    return Call(
        params={"cid": ctx.world.community.id, "camera_id": cam.id},
        form={"ticket": _ticket(ctx, cam.id, role)},
    )


async def p_answer(ctx: Ctx, role: str) -> Call:
    cam = await _camera(ctx)
    return Call(
        params={"cid": ctx.world.community.id, "camera_id": cam.id, "session_id": tag(8)},
        form={"ticket": _ticket(ctx, cam.id, role), "sdp": "v=0\r\no=- 0 0 IN IP4 0\r\n"},
    )


async def p_capture(ctx: Ctx, role: str) -> Call:
    cid = ctx.world.community.id
    now = datetime.now(UTC)
    row = await VideoCapture.create(
        community_id=cid,
        camera_id=1,
        kind=CaptureKind.SNAPSHOT,
        access_event_id=1,
        start_at=now,
        end_at=now,
        dedupe_key=f"console-matrix:{tag(8)}",
    )
    store = capture_store(ctx.stack.settings)
    row.ref = store.ref_for(cid, row.id, "snapshot", row.created_at)
    store.save(row.ref, b"\xff\xd8matrix\xff\xd9")
    row.state = CaptureState.READY
    await row.save(update_fields=["ref", "state"])
    return Call(params={"cid": cid, "capture_id": row.id}, form={"reason": "矩阵测试"})


async def v_capture(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.headers["content-type"] == "image/jpeg"
    assert await AuditLog.filter(
        action="video.snapshot.read", target_id=str(call.params["capture_id"])
    ).exists()


async def p_captures(ctx: Ctx, role: str) -> Call:
    return Call(params={"cid": ctx.world.community.id})


RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{C}/video"): Rule(AG),
    ("POST", f"{C}/video/{{camera_id}}/watch"): Rule(AG, p_watch, ok=503),  # no media server
    ("POST", f"{C}/video/{{camera_id}}/webrtc"): Rule(AG, p_webrtc, ok=503),
    ("POST", f"{C}/video/{{camera_id}}/webrtc/{{session_id}}/answer"): Rule(AG, p_answer, ok=503),
    ("POST", f"{C}/video/captures/{{capture_id}}"): Rule(AG, p_capture, verify=v_capture),
    ("GET", f"{C}/video/captures"): Rule(AG, p_captures),
}
