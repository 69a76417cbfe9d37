"""Cameras, live view, captures and the viewing audit.

Staff routes (`/api/v1/staff/...`) take the bearer token. The media routes
(`/api/v1/video/live/...`) take the viewing ticket instead: the ticket is what a player
(HLS) can carry, and every byte is served only after it was checked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Response

from anxin.errors import Conflict, DomainError, Forbidden, Unavailable, not_found
from anxin.runtime import Runtime
from anxin.timefmt import from_person, local_iso
from api.contract import (
    PAGE_DEFAULT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    errors,
    keyset_page,
    page_list,
)
from api.deps import PrincipalDep, RuntimeDep
from api.schemas import Ok, PathId, When
from api.video.schemas import (
    CameraHealth,
    CameraIn,
    CameraOut,
    CameraPage,
    CameraUpdate,
    CaptureOut,
    LiveTicketOut,
    PolicyIn,
    ReasonIn,
    VideoPolicyOut,
    ViewingOut,
    WebRtcAnswer,
    WebRtcOfferOut,
    WebRtcStart,
)
from auth.permissions import Action, authorize
from domain.privacy.service import register_export
from domain.video import cameras, captures, tickets, viewing
from domain.video.cameras import door_ids_of
from models import AuditLog, Camera, CaptureKind, VideoCapture
from video.backend import MediaError, NoMediaServer
from video.service import VIDEO, NotWatchable, VideoService

router = api_router(tags=[STAFF])
# A resident's data export lists the camera captures of their access events, and who opened
# each (domain/privacy).
register_export("camera_captures", captures.about_resident)
V1 = "/api/v1"
TicketPath = Annotated[str, Path(min_length=1, max_length=tickets.MAX_TICKET_LEN)]


def _video(runtime: Runtime) -> VideoService:
    return runtime.get(VIDEO)


def no_media_server() -> DomainError:
    return Unavailable(
        "no_media_server",
        "未配置流媒体服务器，无法查看视频（见 docs/video.md）",
        "no media server is configured: video is unavailable (see docs/video.md)",
    )


def media_failed(exc: MediaError) -> DomainError:
    if isinstance(exc, NoMediaServer):
        return no_media_server()
    return Unavailable("media_unavailable", "视频暂不可用", f"video unavailable: {exc}")


def ticket_refused() -> DomainError:
    # One answer for missing, forged, expired and other-camera tickets.
    return Forbidden("ticket_invalid", "观看凭证无效或已过期", "viewing ticket invalid or expired")


def camera_out(c: Camera, doors: list[int], video: VideoService, tz: str) -> CameraOut:
    health = video.backend.health(c.id)
    return CameraOut(
        id=c.id,
        community_id=c.community_id,
        name=c.name,
        place=c.place,
        main_url=c.main_url,
        sub_url=c.sub_url,
        sub_codec=c.sub_codec,
        has_credentials=c.credentials_enc is not None,
        enabled=c.enabled,
        door_ids=sorted(doors),
        media_server=video.backend.name if video.configured else None,
        live_protocols=video.backend.live_protocols(c.id) if c.enabled else [],
        health=CameraHealth(
            reachable=health.reachable if health else c.reachable,
            last_frame_at=local_iso(health.last_frame_at if health else c.last_frame_at, tz),
            error=(health.error if health else c.last_error) or "",
            checked_at=local_iso(c.health_checked_at, tz),
        ),
        timezone=tz,
    )


def capture_out(c: VideoCapture, tz: str) -> CaptureOut:
    return CaptureOut(
        id=c.id,
        camera_id=c.camera_id,
        kind=c.kind,
        state=c.state,
        access_event_id=c.access_event_id,
        alarm_id=c.alarm_id,
        start_at=local_iso(c.start_at, tz),
        end_at=local_iso(c.end_at, tz),
        size=c.size,
        error=c.error,
        content_type="image/jpeg" if c.kind == CaptureKind.SNAPSHOT else "video/mp4",
        timezone=tz,
    )


def _local(value: str | None, tz: str) -> str | None:
    """An audit detail's UTC ISO time, in the community's zone."""
    return local_iso(datetime.fromisoformat(value), tz) if value else None


def viewing_out(row: AuditLog, tz: str) -> ViewingOut:
    v = viewing.viewing_out(row)
    return ViewingOut(
        id=v["id"],
        action=v["action"],
        staff_id=v["staff_id"],
        camera_id=v["camera_id"],
        capture_id=v["capture_id"],
        from_=_local(v["from"], tz),
        to=_local(v["to"], tz),
        reason=v["reason"],
        at=local_iso(row.created_at, tz) or "",
        timezone=tz,
    )


def media(*types: str, description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is bytes of these media types."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {200: {"content": dict.fromkeys(types, binary), "description": description}}


# ---------------------------------------------------------------------------- cameras


@router.get(
    f"{V1}/staff/communities/{{community_id}}/cameras",
    response_model=CameraPage,
    summary="List cameras",
)
async def list_cameras(
    community_id: PathId,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> CameraPage:
    rows, nxt = page_list(
        await cameras.list_cameras(principal, community_id), cursor, limit, lambda c: c.id
    )
    doors = await door_ids_of([c.id for c in rows])
    tz = await community_tz(community_id)
    video = _video(runtime)
    return CameraPage(
        media_server=video.backend.name if video.configured else None,
        message=None if video.configured else no_media_server().zh,
        items=[camera_out(c, doors[c.id], video, tz) for c in rows],
        next=nxt,
    )


@router.post(
    f"{V1}/staff/communities/{{community_id}}/cameras",
    status_code=201,
    response_model=CameraOut,
    summary="Add a camera",
)
async def create_camera(
    community_id: PathId, body: CameraIn, principal: PrincipalDep, runtime: RuntimeDep
) -> CameraOut:
    video = _video(runtime)
    camera = await cameras.create_camera(
        principal, community_id, video.keyring, runtime.bus, **body.model_dump()
    )
    return camera_out(camera, body.door_ids, video, await community_tz(community_id))


@router.get(
    f"{V1}/staff/cameras/{{camera_id}}",
    response_model=CameraOut,
    summary="One camera with its health",
)
async def get_camera(camera_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> CameraOut:
    camera = await cameras.get_camera(principal, camera_id)
    doors = await door_ids_of([camera.id])
    return camera_out(
        camera, doors[camera.id], _video(runtime), await community_tz(camera.community_id)
    )


@router.patch(
    f"{V1}/staff/cameras/{{camera_id}}",
    response_model=CameraOut,
    summary="Change a camera",
)
async def update_camera(
    camera_id: PathId, body: CameraUpdate, principal: PrincipalDep, runtime: RuntimeDep
) -> CameraOut:
    video = _video(runtime)
    changes = body.model_dump(exclude_unset=True)
    camera = await cameras.update_camera(principal, camera_id, video.keyring, runtime.bus, changes)
    doors = await door_ids_of([camera.id])
    return camera_out(camera, doors[camera.id], video, await community_tz(camera.community_id))


@router.delete(f"{V1}/staff/cameras/{{camera_id}}", response_model=Ok, summary="Remove a camera")
async def delete_camera(camera_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> Ok:
    await cameras.delete_camera(principal, camera_id, runtime.bus)
    return Ok()


# ---------------------------------------------------------------------------- live view


@router.post(
    f"{V1}/staff/cameras/{{camera_id}}/live",
    response_model=LiveTicketOut,
    responses=errors(409, 503),
    summary="A viewing ticket for one camera (the reason is audited)",
)
async def live_ticket(
    camera_id: PathId, body: ReasonIn, principal: PrincipalDep, runtime: RuntimeDep
) -> LiveTicketOut:
    try:
        ticket, camera, protocols = await _video(runtime).open_live(
            principal, camera_id, body.reason
        )
    except NotWatchable:
        raise Conflict(
            "not_watchable",
            "该摄像头子码流不是 H.264，浏览器无法直接播放",
            "the camera's sub-stream is not H.264: browsers cannot play it without transcoding",
        ) from None
    except MediaError as exc:
        raise media_failed(exc) from None
    s = runtime.settings
    base = f"{V1}/video/live/{camera.id}"
    expires = datetime.fromtimestamp(ticket.expires_at_s, UTC)
    return LiveTicketOut(
        camera_id=camera.id,
        ticket=ticket.token,
        expires_at=local_iso(expires, await community_tz(camera.community_id)) or "",
        expires_in=s.video_ticket_ttl_s,
        protocols=protocols,
        hls_url=f"{base}/{ticket.token}/index.m3u8",
        webrtc_url=f"{base}/webrtc" if "webrtc" in protocols else None,
    )


def _check(runtime: Any, token: str, camera_id: int) -> tickets.Ticket:
    try:
        return _video(runtime).check_ticket(token, camera_id)
    except tickets.TicketError:
        raise ticket_refused() from None


NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
SessionPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


@router.get(
    f"{V1}/video/live/{{camera_id}}/{{ticket}}/index.m3u8",
    summary="Live HLS playlist",
    response_class=Response,
    responses={
        **media("application/vnd.apple.mpegurl", description="HLS playlist"),
        **errors(403, 503),
    },
)
async def hls_playlist(camera_id: PathId, ticket: TicketPath, runtime: RuntimeDep) -> Response:
    _check(runtime, ticket, camera_id)
    try:
        text = await _video(runtime).backend.hls_playlist(camera_id)
    except MediaError as exc:
        raise media_failed(exc) from None
    return Response(text, media_type="application/vnd.apple.mpegurl", headers=NO_STORE)


@router.get(
    f"{V1}/video/live/{{camera_id}}/{{ticket}}/{{segment}}",
    summary="Live HLS segment",
    response_class=Response,
    responses={**media("video/mp2t", description="MPEG-TS segment"), **errors(403, 503)},
)
async def hls_segment(
    camera_id: PathId,
    ticket: TicketPath,
    runtime: RuntimeDep,
    segment: Annotated[str, Path(pattern=r"^s\d{1,12}\.ts$")],
) -> Response:
    _check(runtime, ticket, camera_id)
    try:
        data = await _video(runtime).backend.hls_segment(camera_id, segment)
    except MediaError:
        raise not_found("segment") from None
    return Response(data, media_type="video/mp2t", headers=NO_STORE)


@router.post(
    f"{V1}/video/live/{{camera_id}}/webrtc",
    response_model=WebRtcOfferOut,
    responses=errors(503),
    summary="Start WebRTC (server offer)",
)
async def webrtc_start(
    camera_id: PathId, body: WebRtcStart, principal: PrincipalDep, runtime: RuntimeDep
) -> WebRtcOfferOut:
    try:
        offer = await _video(runtime).webrtc_start(body.ticket, camera_id, principal)
    except tickets.TicketError:
        raise ticket_refused() from None
    except MediaError as exc:
        raise media_failed(exc) from None
    return WebRtcOfferOut(session_id=offer.session_id, sdp=offer.sdp)


@router.post(
    f"{V1}/video/live/{{camera_id}}/webrtc/{{session_id}}/answer",
    response_model=Ok,
    responses=errors(503),
    summary="Answer the offer",
)
async def webrtc_answer(
    camera_id: PathId,
    session_id: SessionPath,
    body: WebRtcAnswer,
    principal: PrincipalDep,
    runtime: RuntimeDep,
) -> Ok:
    try:
        await _video(runtime).webrtc_answer(body.ticket, camera_id, principal, session_id, body.sdp)
    except tickets.TicketError:
        raise ticket_refused() from None
    except MediaError as exc:
        raise media_failed(exc) from None
    return Ok()


@router.delete(
    f"{V1}/video/live/{{camera_id}}/webrtc/{{session_id}}",
    response_model=Ok,
    summary="Stop watching",
)
async def webrtc_stop(
    camera_id: PathId,
    session_id: SessionPath,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    ticket: str = Query(..., max_length=tickets.MAX_TICKET_LEN),
) -> Ok:
    try:
        await _video(runtime).webrtc_stop(ticket, camera_id, principal, session_id)
    except tickets.TicketError:
        raise ticket_refused() from None
    return Ok()


# ---------------------------------------------------------------------------- captures


@router.get(
    f"{V1}/staff/communities/{{community_id}}/video/captures",
    response_model=Page[CaptureOut],
    summary="Snapshots and clips taken on access events and alarms, newest first",
)
async def list_captures(
    community_id: PathId,
    principal: PrincipalDep,
    access_event_id: int | None = Query(None, gt=0, le=2**63 - 1),
    alarm_id: int | None = Query(None, gt=0, le=2**31 - 1),
    camera_id: int | None = Query(None, gt=0, le=2**31 - 1),
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[CaptureOut]:
    rows, nxt = await keyset_page(
        lambda n, before: captures.list_captures(
            principal,
            community_id,
            access_event_id=access_event_id,
            alarm_id=alarm_id,
            camera_id=camera_id,
            limit=n,
            before=before,
        ),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[capture_out(c, tz) for c in rows], next=nxt)


@router.get(
    f"{V1}/staff/video/captures/{{capture_id}}/content",
    summary="Open a snapshot (JPEG) or clip (MP4); the reason is audited",
    response_class=Response,
    responses=media("image/jpeg", "video/mp4", description="the capture"),
)
async def capture_content(
    capture_id: Annotated[int, Path(gt=0, le=2**63 - 1)],
    principal: PrincipalDep,
    runtime: RuntimeDep,
    reason: str = Query(..., max_length=200),
) -> Response:
    video = _video(runtime)
    capture, data = await viewing.read_capture(principal, capture_id, reason, video.store)
    media = "image/jpeg" if capture.kind.value == "snapshot" else "video/mp4"
    return Response(
        data, media_type=media, headers={**NO_STORE, "Cache-Control": "private, no-store"}
    )


# ---------------------------------------------------------------------------- audit, policy


@router.get(
    f"{V1}/staff/communities/{{community_id}}/video/viewings",
    response_model=Page[ViewingOut],
    summary="Who watched what, when and why (admins), newest first",
)
async def viewings(
    community_id: PathId,
    principal: PrincipalDep,
    staff_id: int | None = Query(None, gt=0, le=2**31 - 1),
    camera_id: int | None = Query(None, gt=0, le=2**31 - 1),
    since: When | None = None,
    until: When | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[ViewingOut]:
    tz = await community_tz(community_id)
    rows, nxt = await keyset_page(
        lambda n, before: viewing.list_viewings(
            principal,
            community_id,
            staff_id=staff_id,
            camera_id=camera_id,
            since=from_person(since, tz) if since is not None else None,
            until=from_person(until, tz, end_of_day=True) if until is not None else None,
            limit=n,
            before=before,
        ),
        cursor,
        limit,
    )
    return Page(items=[viewing_out(r, tz) for r in rows], next=nxt)


def policy_out(p: captures.VideoPolicy, runtime: Runtime) -> VideoPolicyOut:
    return VideoPolicyOut(
        clip_pre_s=p.clip_pre_s,
        clip_post_s=p.clip_post_s,
        clip_retention_days=p.clip_retention_days,
        max_pre_s=captures.max_pre_s(runtime.settings),
    )


@router.get(
    f"{V1}/staff/communities/{{community_id}}/video/policy",
    response_model=VideoPolicyOut,
    summary="Video policy",
)
async def get_policy(
    community_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> VideoPolicyOut:
    authorize(principal, Action.COMMUNITY_READ, community_id)
    return policy_out(await captures.policy_for(community_id, runtime.settings), runtime)


@router.put(
    f"{V1}/staff/communities/{{community_id}}/video/policy",
    response_model=VideoPolicyOut,
    summary="Set video policy",
)
async def put_policy(
    community_id: PathId, body: PolicyIn, principal: PrincipalDep, runtime: RuntimeDep
) -> VideoPolicyOut:
    p = await captures.set_policy(principal, community_id, runtime.settings, **body.model_dump())
    return policy_out(p, runtime)
