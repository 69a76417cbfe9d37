"""Who watched what, when, and why: every live view, snapshot and clip read is audited.

Footage of residents is personal data (PIPL): a staff member gives a reason each time,
and the audit row names the staff member, the camera, the time range seen and the
reason. Admins read these rows (`list_viewings`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from anxin.clock import utcnow
from anxin.errors import conflict, invalid, not_found
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from domain.video import tickets
from domain.video.store import CaptureMissing, CaptureStore
from models import AuditLog, Camera, CaptureKind, CaptureState, VideoCapture

LIVE = "video.live"
SNAPSHOT_READ = "video.snapshot.read"
CLIP_READ = "video.clip.read"
VIEW_ACTIONS = (LIVE, SNAPSHOT_READ, CLIP_READ)
REASON_MIN, REASON_MAX = 2, 200


def clean_reason(reason: str | None) -> str:
    reason = " ".join((reason or "").split())
    if len(reason) < REASON_MIN or len(reason) > REASON_MAX:
        raise invalid(
            "reason_required",
            "查看视频须填写事由（2 至 200 字）",
            "give the reason for viewing (2 to 200 characters)",
        )
    return reason


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


async def issue_live_ticket(
    principal: Principal, camera_id: int, reason: str, key: bytes, ttl_s: int
) -> tuple[tickets.Ticket, Camera]:
    """A ticket to watch `camera_id` live for `ttl_s`, written to the audit log first."""
    reason = clean_reason(reason)
    camera = await scoped_row(principal, Action.VIDEO_LIVE, Camera, camera_id, "camera")
    if not camera.enabled:
        raise conflict("camera_disabled", "摄像头已停用", "camera is disabled")
    ticket = tickets.issue(key, camera.id, principal.id, ttl_s)
    start = utcnow()
    await audit.record(
        LIVE,
        **principal.audit_actor(),
        community_id=camera.community_id,
        target_type="camera",
        target_id=camera.id,
        details={
            "camera_id": camera.id,
            "camera": camera.name,
            "from": _iso(start),
            "to": _iso(datetime.fromtimestamp(ticket.expires_at_s, UTC)),
            "reason": reason,
            "ticket": ticket.nonce,  # ties media requests in server logs to this row
        },
    )
    return ticket, camera


async def read_capture(
    principal: Principal, capture_id: int, reason: str, store: CaptureStore
) -> tuple[VideoCapture, bytes]:
    """The decrypted snapshot (JPEG) or clip (MP4), after writing who read it and why."""
    reason = clean_reason(reason)
    capture = await scoped_row(
        principal, Action.VIDEO_FOOTAGE_READ, VideoCapture, capture_id, "capture"
    )
    if capture.state != CaptureState.READY:
        raise not_found("capture")
    try:
        data = store.load(capture.ref)
    except CaptureMissing:
        raise not_found("capture") from None
    await audit.record(
        SNAPSHOT_READ if capture.kind == CaptureKind.SNAPSHOT else CLIP_READ,
        **principal.audit_actor(),
        community_id=capture.community_id,
        target_type="video_capture",
        target_id=capture.id,
        details={
            "camera_id": capture.camera_id,
            "from": _iso(capture.start_at),
            "to": _iso(capture.end_at),
            "reason": reason,
            "access_event_id": capture.access_event_id,
            "alarm_id": capture.alarm_id,
        },
    )
    return capture, data


async def list_viewings(
    principal: Principal,
    community_id: int,
    *,
    staff_id: int | None = None,
    camera_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[AuditLog]:
    """The viewing audit of a community, newest first (admins only)."""
    authorize(principal, Action.AUDIT_READ, community_id)
    query = AuditLog.filter(community_id=community_id, action__in=VIEW_ACTIONS)
    if staff_id is not None:
        query = query.filter(actor_type="staff", actor_id=staff_id)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if until is not None:
        query = query.filter(created_at__lt=until)
    if camera_id is None:
        if before is not None:
            query = query.filter(id__lt=before)
        return list(await query.order_by("-id").limit(limit))
    # The camera is in details (JSON, not portably filterable): read newest first in
    # batches until the page is full, so a page is never cut short by the filter.
    rows: list[AuditLog] = []
    while len(rows) < limit:
        batch_q = query if before is None else query.filter(id__lt=before)
        batch = await batch_q.order_by("-id").limit(500)
        rows += [r for r in batch if r.details.get("camera_id") == camera_id]
        if len(batch) < 500:
            break
        before = batch[-1].id
    return rows[:limit]


def viewing_out(row: AuditLog) -> dict[str, Any]:
    d = row.details or {}
    return {
        "id": row.id,
        "action": row.action,
        "staff_id": row.actor_id,
        "camera_id": d.get("camera_id"),
        "capture_id": int(row.target_id) if row.target_type == "video_capture" else None,
        "from": d.get("from"),
        "to": d.get("to"),
        "reason": d.get("reason", ""),
        "at": _iso(row.created_at),
    }
