"""Authz matrix entries for video (merged into tests/authz_table.py TABLE).

The matrix's stack runs the embedded default (no media server): allowed callers of the
live-view ticket route get 503 `no_media_server`, after every refusal was decided. Media
routes take a viewing ticket instead of a login: a genuine ticket for another camera is
refused for everybody, logged in or not.
"""

from __future__ import annotations

from datetime import UTC, datetime

from domain.video import tickets
from domain.video.store import capture_store
from models import Camera, CaptureKind, CaptureState, VideoCapture
from tests.authz_table import (
    ADMIN,
    ANONYMOUS,
    APPROVER,
    GUARD,
    NEWCOMER,
    OUTSIDER,
    RESIDENT,
    V1,
    Call,
    Ctx,
    Rule,
    no_probing,
    swap_param,
    tag,
)

A_G = frozenset({ADMIN, GUARD})
NOBODY: frozenset[str] = frozenset()


async def _camera(ctx: Ctx) -> Camera:
    return await Camera.create(
        uid=tag(8),
        community_id=ctx.world.community.id,
        name=f"cam-{tag()}",
        main_url="rtsp://gate-cam.invalid/main",
    )


async def p_cameras(ctx: Ctx, role: str) -> Call:
    return Call(params={"community_id": ctx.world.community.id})


async def p_new_camera(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"community_id": ctx.world.community.id},
        json={"name": f"cam-{tag()}", "main_url": "rtsp://u:p@gate-cam.invalid:554/ch1"},
    )


async def p_camera(ctx: Ctx, role: str) -> Call:
    return Call(params={"camera_id": (await _camera(ctx)).id})


async def p_camera_update(ctx: Ctx, role: str) -> Call:
    return Call(params={"camera_id": (await _camera(ctx)).id}, json={"place": "北门"})


async def p_live(ctx: Ctx, role: str) -> Call:
    return Call(params={"camera_id": (await _camera(ctx)).id}, json={"reason": "矩阵测试"})


def _wrong_camera_ticket(ctx: Ctx, camera_id: int) -> str:
    key = tickets.ticket_key(ctx.stack.settings)
    return tickets.issue(key, camera_id + 1, 1, 300).token


async def p_hls(ctx: Ctx, role: str) -> Call:
    cam = await _camera(ctx)
    return Call(params={"camera_id": cam.id, "ticket": _wrong_camera_ticket(ctx, cam.id)})


async def p_hls_segment(ctx: Ctx, role: str) -> Call:
    call = await p_hls(ctx, role)
    return Call(params={**call.params, "segment": "s1.ts"})


async def p_webrtc(ctx: Ctx, role: str) -> Call:
    cam = await _camera(ctx)
    return Call(params={"camera_id": cam.id}, json={"ticket": _wrong_camera_ticket(ctx, cam.id)})


async def p_webrtc_answer(ctx: Ctx, role: str) -> Call:
    cam = await _camera(ctx)
    return Call(
        params={"camera_id": cam.id, "session_id": tag(8)},
        json={"ticket": _wrong_camera_ticket(ctx, cam.id), "sdp": "v=0\r\no=- 0 0 IN IP4 0\r\n"},
    )


async def p_webrtc_stop(ctx: Ctx, role: str) -> Call:
    cam = await _camera(ctx)
    return Call(
        params={"camera_id": cam.id, "session_id": tag(8)},
        query={"ticket": _wrong_camera_ticket(ctx, cam.id)},
    )


async def p_capture(ctx: Ctx, role: str) -> Call:
    now = datetime.now(UTC)
    row = await VideoCapture.create(
        community_id=ctx.world.community.id,
        camera_id=1,
        kind=CaptureKind.SNAPSHOT,
        start_at=now,
        end_at=now,
        dedupe_key=f"matrix:{tag(8)}",
    )
    store = capture_store(ctx.stack.settings)
    row.ref = store.ref_for(row.community_id, row.id, "snapshot", row.created_at)
    store.save(row.ref, b"\xff\xd8matrix\xff\xd9")
    row.state = CaptureState.READY
    await row.save(update_fields=["ref", "state"])
    return Call(params={"capture_id": row.id}, query={"reason": "矩阵测试"})


async def p_policy(ctx: Ctx, role: str) -> Call:
    return Call(
        params={"community_id": ctx.world.community.id},
        json={"clip_pre_s": 5, "clip_post_s": 5, "clip_retention_days": 14},
    )


# A genuine ticket for another camera opens nothing, for anyone.
TICKET_REFUSED = dict.fromkeys(
    (ANONYMOUS, NEWCOMER, RESIDENT, ADMIN, APPROVER, GUARD, OUTSIDER), 403
)
LOGIN_THEN_TICKET = {**TICKET_REFUSED, ANONYMOUS: 401}

CAM = f"{V1}/staff/cameras/{{camera_id}}"
LIVE = f"{V1}/video/live/{{camera_id}}"
RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{V1}/staff/communities/{{community_id}}/cameras"): Rule("staff", A_G, p_cameras),
    ("POST", f"{V1}/staff/communities/{{community_id}}/cameras"): Rule(
        "staff", frozenset({ADMIN}), p_new_camera, ok=201
    ),
    ("GET", CAM): Rule("staff", A_G, p_camera),
    ("PATCH", CAM): Rule("staff", frozenset({ADMIN}), p_camera_update),
    ("DELETE", CAM): Rule("staff", frozenset({ADMIN}), p_camera),
    ("POST", f"{CAM}/live"): Rule("staff", A_G, p_live, ok=503),  # no media server here
    ("GET", f"{LIVE}/{{ticket}}/index.m3u8"): Rule("public", NOBODY, p_hls, deny=TICKET_REFUSED),
    ("GET", f"{LIVE}/{{ticket}}/{{segment}}"): Rule(
        "public", NOBODY, p_hls_segment, deny=TICKET_REFUSED
    ),
    ("POST", f"{LIVE}/webrtc"): Rule("staff", NOBODY, p_webrtc, deny=LOGIN_THEN_TICKET),
    ("POST", f"{LIVE}/webrtc/{{session_id}}/answer"): Rule(
        "staff", NOBODY, p_webrtc_answer, deny=LOGIN_THEN_TICKET
    ),
    ("DELETE", f"{LIVE}/webrtc/{{session_id}}"): Rule(
        "staff", NOBODY, p_webrtc_stop, deny=LOGIN_THEN_TICKET
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/video/captures"): Rule(
        "staff", A_G, p_cameras
    ),
    ("GET", f"{V1}/staff/video/captures/{{capture_id}}/content"): Rule("staff", A_G, p_capture),
    ("GET", f"{V1}/staff/communities/{{community_id}}/video/viewings"): Rule(
        "staff", frozenset({ADMIN}), p_cameras
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/video/policy"): Rule(
        "staff", frozenset({ADMIN, APPROVER, GUARD}), p_cameras
    ),
    ("PUT", f"{V1}/staff/communities/{{community_id}}/video/policy"): Rule(
        "staff", frozenset({ADMIN}), p_policy
    ),
}

no_probing(
    RULES,
    {
        ("GET", CAM): swap_param("camera_id"),
        ("PATCH", CAM): swap_param("camera_id"),
        ("DELETE", CAM): swap_param("camera_id"),
        ("POST", f"{CAM}/live"): swap_param("camera_id"),
        ("GET", f"{V1}/staff/video/captures/{{capture_id}}/content"): swap_param("capture_id"),
        ("GET", f"{V1}/staff/communities/{{community_id}}/cameras"): swap_param("community_id"),
    },
    frozenset({NEWCOMER, RESIDENT, OUTSIDER}),
)
