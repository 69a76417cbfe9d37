"""Video in the console: cameras with their health, live view (WebRTC, HLS fallback) after
a reason is given, and the snapshots and clips taken on access events and alarms.

The page never holds footage itself: the player gets a viewing ticket (audited) and
plays through the media routes; a snapshot or clip is opened by a POST that carries the
reason (audited) and answers the JPEG or MP4. `captures_fragment` renders the captures
of one access event or alarm for the access-log and alarm pages (hx-get it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import JSONResponse, Response

from anxin.errors import Conflict, DomainError, Forbidden, Unavailable, not_found
from auth.permissions import Action
from console import i18n, nav
from console.web import CommunityCtx, ConsoleRoute, is_htmx, render
from domain.video import cameras, captures, tickets, viewing
from domain.video.cameras import door_ids_of
from video.backend import MediaError, NoMediaServer
from video.service import VIDEO, NotWatchable, VideoService

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
CameraId = Annotated[int, Path(gt=0, le=2**31 - 1)]
# Signalling is posted as a form (with the X-CSRF-Token header), like every console POST.
TicketForm = Annotated[str, Form(max_length=tickets.MAX_TICKET_LEN)]

nav.register(
    nav.NavItem(
        "video", "nav.video", "/console/c/{cid}/video", actions=(Action.VIDEO_LIVE,), order=60
    )
)

i18n.add(
    {
        "nav.video": ("视频监控", "Cameras"),
        "video.title": ("视频监控", "Cameras"),
        "video.no_server": (
            "未配置流媒体服务器：无法查看实时视频，也不会抓拍。请管理员按 docs/video.md 配置。",
            "No media server is configured: no live view and no snapshots. "
            "An administrator can set one up (docs/video.md).",
        ),
        "video.none": ("本小区尚未登记摄像头。", "No cameras registered in this community."),
        "video.camera": ("摄像头", "Camera"),
        "video.place": ("位置", "Place"),
        "video.health": ("状态", "Status"),
        "video.online": ("在线", "online"),
        "video.offline": ("离线", "offline"),
        "video.disabled": ("已停用", "disabled"),
        "video.last_frame": ("最新画面", "Last frame"),
        "video.reason": ("查看事由（将记录在审计日志中）", "Reason (written to the audit log)"),
        "video.watch": ("查看实时画面", "Watch live"),
        "video.live_title": ("实时画面", "Live"),
        "video.connecting": ("正在连接…", "Connecting…"),
        "video.playing": ("正在播放", "Playing"),
        "video.via_hls": ("已切换为 HLS 播放", "Playing over HLS"),
        "video.expires": ("观看凭证有效至", "Ticket valid until"),
        "video.expired": (
            "观看时间已到，如需继续请重新填写事由。",
            "Viewing time is over; give a reason again to continue.",
        ),
        "video.back": ("返回摄像头列表", "Back to cameras"),
        "video.captures": ("最近抓拍与录像", "Recent snapshots and clips"),
        "video.kind.snapshot": ("抓拍", "snapshot"),
        "video.kind.clip": ("录像", "clip"),
        "video.trigger": ("触发", "Trigger"),
        "video.access_event": ("通行记录", "access event"),
        "video.alarm": ("告警", "alarm"),
        "video.time": ("时间", "Time"),
        "video.open": ("打开", "Open"),
        "video.state.failed": ("失败", "failed"),
        "video.state.pending": ("处理中", "pending"),
        "video.state.deleted": ("已过保留期删除", "deleted (retention)"),
        "video.no_captures": ("暂无抓拍。", "Nothing captured yet."),
        "video.camera_captures": ("摄像头抓拍/录像", "Camera footage"),
    }
)


def _video(ctx: CommunityCtx) -> VideoService:
    return ctx.runtime.get(VIDEO)


async def _camera_here(ctx: CommunityCtx, camera_id: CameraId):
    camera = await cameras.get_camera(ctx.principal, camera_id)
    if camera.community_id != ctx.cid:
        raise not_found("camera")
    return camera


@router.get("/c/{cid}/video")
async def video_page(ctx: CommunityCtx) -> Response:
    assert ctx.cid is not None
    video = _video(ctx)
    rows = await cameras.list_cameras(ctx.principal, ctx.cid)
    doors = await door_ids_of([c.id for c in rows])
    items = []
    for c in rows:
        health = video.backend.health(c.id)
        items.append(
            {
                "camera": c,
                "doors": doors[c.id],
                "reachable": health.reachable if health else c.reachable,
                "last_frame": ctx.local(health.last_frame_at if health else c.last_frame_at),
                "protocols": video.backend.live_protocols(c.id) if c.enabled else [],
            }
        )
    recent = []
    if ctx.may(Action.VIDEO_FOOTAGE_READ):
        recent = await captures.list_captures(ctx.principal, ctx.cid, limit=20)
    return await render(
        ctx, "video.html", active="video", items=items, configured=video.configured,
        recent=recent,
    )  # fmt: skip


@router.post("/c/{cid}/video/{camera_id}/watch")
async def watch(
    ctx: CommunityCtx, camera_id: CameraId, reason: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    await _camera_here(ctx, camera_id)
    try:
        ticket, camera, protocols = await _video(ctx).open_live(ctx.principal, camera_id, reason)
    except NoMediaServer:
        zh, en = i18n.t("video.no_server", "zh"), i18n.t("video.no_server", "en")
        raise Unavailable("no_media_server", zh, en) from None
    except NotWatchable:
        zh, en = "该摄像头子码流不是 H.264，浏览器无法直接播放", "sub-stream is not H.264"
        raise Conflict("not_watchable", zh, en) from None
    expires = datetime.fromtimestamp(ticket.expires_at_s, UTC)
    return await render(
        ctx,
        "video_live.html",
        active="video",
        camera=camera,
        ticket=ticket.token,
        protocols=",".join(protocols),
        hls_url=f"/api/v1/video/live/{camera.id}/{ticket.token}/index.m3u8",
        webrtc_url=f"/console/c/{ctx.cid}/video/{camera.id}/webrtc",
        expires=ctx.local(expires),
        expires_ms=ticket.expires_ms,
    )


def _refused() -> DomainError:
    return Forbidden("ticket_invalid", "观看凭证无效或已过期", "viewing ticket invalid or expired")


def _unavailable(exc: MediaError) -> DomainError:
    return Unavailable("media_unavailable", "视频暂不可用", f"video unavailable: {exc}")


@router.post("/c/{cid}/video/{camera_id}/webrtc")
async def webrtc_start(ctx: CommunityCtx, camera_id: CameraId, ticket: TicketForm) -> JSONResponse:
    try:
        offer = await _video(ctx).webrtc_start(ticket, camera_id, ctx.principal)
    except tickets.TicketError:
        raise _refused() from None
    except MediaError as exc:
        raise _unavailable(exc) from None
    return JSONResponse({"session_id": offer.session_id, "sdp": offer.sdp})


@router.post("/c/{cid}/video/{camera_id}/webrtc/{session_id}/answer")
async def webrtc_answer(
    ctx: CommunityCtx,
    camera_id: CameraId,
    session_id: str,
    ticket: TicketForm,
    sdp: Annotated[str, Form(min_length=10, max_length=20_000)],
) -> JSONResponse:
    if not 8 <= len(session_id) <= 64:
        raise not_found("session")
    try:
        await _video(ctx).webrtc_answer(ticket, camera_id, ctx.principal, session_id, sdp)
    except tickets.TicketError:
        raise _refused() from None
    except MediaError as exc:
        raise _unavailable(exc) from None
    return JSONResponse({"ok": True})


@router.post("/c/{cid}/video/captures/{capture_id}")
async def open_capture(
    ctx: CommunityCtx, capture_id: int, reason: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    if not 1 <= capture_id <= 2**63 - 1:
        raise not_found("capture")
    capture, data = await viewing.read_capture(ctx.principal, capture_id, reason, _video(ctx).store)
    if capture.community_id != ctx.cid:
        raise not_found("capture")
    media = "image/jpeg" if capture.kind.value == "snapshot" else "video/mp4"
    return Response(data, media_type=media, headers={"cache-control": "private, no-store"})


@router.get("/c/{cid}/video/captures")
async def captures_fragment(
    ctx: CommunityCtx,
    access_event_id: int | None = Query(None, gt=0, le=2**63 - 1),
    alarm_id: int | None = Query(None, gt=0, le=2**31 - 1),
) -> Response:
    """The captures of one access event or alarm: a page, or (htmx) a fragment for the
    access-log and alarm pages."""
    assert ctx.cid is not None
    rows = await captures.list_captures(
        ctx.principal, ctx.cid, access_event_id=access_event_id, alarm_id=alarm_id, limit=20
    )
    template = "_video_captures.html" if is_htmx(ctx.request) else "video_captures.html"
    return await render(
        ctx, template, active="video", recent=rows, access_event_id=access_event_id,
        alarm_id=alarm_id,
    )  # fmt: skip
