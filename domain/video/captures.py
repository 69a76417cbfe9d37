"""Captures: a snapshot for every access event at a door a camera watches, a snapshot and
a clip (pre-roll from the rolling buffer, post-roll after) for every alarm there.

The rules decide what to capture and record the outcome; the media backend (an adapter)
takes the pictures. A capture row is written `pending` before the backend is asked, with a
unique key per (event, camera, kind): a redelivered event, or a second process hearing
the same announcement, finds the row taken and captures nothing twice.

Retention: snapshots follow `snapshot_retention_days` like the terminals' gate
snapshots; clips follow the community's video policy (`clip_retention_days`, default
`video_clip_retention_days`). The file is deleted and the row kept as `deleted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from anxin.clock import utcnow
from anxin.errors import invalid
from auth.permissions import Action, Principal, authorize
from domain import audit
from domain.video.cameras import cameras_at_door
from domain.video.store import CaptureStore
from models import (
    AccessEvent,
    AlarmKind,
    AuditLog,
    CaptureKind,
    CaptureState,
    CommunityVideoPolicy,
    VideoCapture,
)

MAX_PRE_S, MAX_POST_S, MAX_RETENTION_DAYS = 60, 60, 365
# Alarms that happen at a door (an offline device is not something a camera shows).
NO_CLIP_ALARMS = frozenset({AlarmKind.DEVICE_OFFLINE})


@dataclass(frozen=True)
class VideoPolicy:
    clip_pre_s: int
    clip_post_s: int
    clip_retention_days: int


async def policy_for(community_id: int, settings: Any) -> VideoPolicy:
    row = await CommunityVideoPolicy.get_or_none(community_id=community_id)
    if row is None:
        return VideoPolicy(
            min(settings.video_clip_pre_s, max_pre_s(settings)),
            settings.video_clip_post_s,
            settings.video_clip_retention_days,
        )
    return VideoPolicy(row.clip_pre_s, row.clip_post_s, row.clip_retention_days)


def max_pre_s(settings: Any) -> int:
    """The buffer holds this much before now (minus the segment being written)."""
    return max(0, min(MAX_PRE_S, settings.video_buffer_s - 2 * settings.video_segment_s))


async def set_policy(
    principal: Principal,
    community_id: int,
    settings: Any,
    *,
    clip_pre_s: int,
    clip_post_s: int,
    clip_retention_days: int,
) -> VideoPolicy:
    authorize(principal, Action.COMMUNITY_MANAGE, community_id)
    if not 0 <= clip_pre_s <= max_pre_s(settings):
        raise invalid(
            "pre_roll_too_long",
            f"预录时长须在 0 至 {max_pre_s(settings)} 秒之间",
            f"pre-roll must be 0..{max_pre_s(settings)} s (the rolling buffer's length)",
        )
    if not clip_pre_s + clip_post_s >= 1 or not 0 <= clip_post_s <= MAX_POST_S:
        raise invalid("bad_post_roll", "录像时长无效", f"post-roll must be 0..{MAX_POST_S} s")
    if not 1 <= clip_retention_days <= MAX_RETENTION_DAYS:
        raise invalid("bad_retention", "保留天数无效", "retention must be 1..365 days")
    values: dict[str, Any] = dict(
        clip_pre_s=clip_pre_s, clip_post_s=clip_post_s, clip_retention_days=clip_retention_days
    )
    row = await CommunityVideoPolicy.get_or_none(community_id=community_id)
    if row is None:
        await CommunityVideoPolicy.create(community_id=community_id, **values)
    else:
        await CommunityVideoPolicy.filter(id=row.id).update(**values, updated_at=utcnow())
    await audit.record(
        "video.policy.updated",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="community",
        target_id=community_id,
        details=values,
    )
    return VideoPolicy(**values)


async def _claim(dedupe_key: str, **fields: Any) -> VideoCapture | None:
    try:
        return await VideoCapture.create(dedupe_key=dedupe_key, **fields)
    except IntegrityError:
        return None  # already captured for this event


async def plan_access_event(
    access_event_id: int, community_id: int, device_id: int | None, at: datetime
) -> list[VideoCapture]:
    """Pending snapshot rows, one per camera at the door, for an access event."""
    if device_id is None:
        return []
    planned = []
    for camera in await cameras_at_door(device_id):
        if camera.community_id != community_id:
            continue
        row = await _claim(
            f"ae:{access_event_id}:{camera.id}:snapshot",
            community_id=community_id,
            camera_id=camera.id,
            kind=CaptureKind.SNAPSHOT,
            access_event_id=access_event_id,
            start_at=at,
            end_at=at,
        )
        if row is not None:
            planned.append(row)
    return planned


async def plan_alarm(
    alarm_id: int,
    community_id: int,
    device_id: int | None,
    kind: AlarmKind,
    at: datetime,
    settings: Any,
) -> list[VideoCapture]:
    """Pending snapshot and clip rows, per camera at the door, for an alarm."""
    if device_id is None or kind in NO_CLIP_ALARMS:
        return []
    policy = await policy_for(community_id, settings)
    planned = []
    for camera in await cameras_at_door(device_id):
        if camera.community_id != community_id:
            continue
        for ckind, start, end in (
            (CaptureKind.SNAPSHOT, at, at),
            (
                CaptureKind.CLIP,
                at - timedelta(seconds=policy.clip_pre_s),
                at + timedelta(seconds=policy.clip_post_s),
            ),
        ):
            row = await _claim(
                f"al:{alarm_id}:{camera.id}:{ckind.value}",
                community_id=community_id,
                camera_id=camera.id,
                kind=ckind,
                alarm_id=alarm_id,
                start_at=start,
                end_at=end,
            )
            if row is not None:
                planned.append(row)
    return planned


async def complete(capture: VideoCapture, data: bytes, store: CaptureStore) -> VideoCapture:
    """Encrypt and store what the camera gave; the row becomes `ready`."""
    ref = store.ref_for(capture.community_id, capture.id, capture.kind.value, capture.created_at)
    capture.size = store.save(ref, data)
    capture.ref, capture.state, capture.error = ref, CaptureState.READY, ""
    await capture.save(update_fields=["ref", "state", "size", "error"])
    return capture


async def fail(capture: VideoCapture, error: str) -> None:
    capture.state, capture.error = CaptureState.FAILED, error[:200]
    await capture.save(update_fields=["state", "error"])


async def list_captures(
    principal: Principal,
    community_id: int,
    *,
    access_event_id: int | None = None,
    alarm_id: int | None = None,
    camera_id: int | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[VideoCapture]:
    """What was captured (metadata only: opening one is `viewing.read_capture`)."""
    authorize(principal, Action.VIDEO_FOOTAGE_READ, community_id)
    query = VideoCapture.filter(community_id=community_id)
    if access_event_id is not None:
        query = query.filter(access_event_id=access_event_id)
    if alarm_id is not None:
        query = query.filter(alarm_id=alarm_id)
    if camera_id is not None:
        query = query.filter(camera_id=camera_id)
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit)


async def captured(
    *, access_event_ids: list[int] | None = None, alarm_ids: list[int] | None = None
) -> dict[int, int]:
    """How many snapshots and clips are ready per access event (or per alarm): for the
    access-log and alarm pages, which link to them (opening one is audited)."""
    query = VideoCapture.filter(state=CaptureState.READY)
    if access_event_ids is not None:
        key, query = "access_event_id", query.filter(access_event_id__in=access_event_ids)
    elif alarm_ids is not None:
        key, query = "alarm_id", query.filter(alarm_id__in=alarm_ids)
    else:
        return {}
    counts: dict[int, int] = {}
    for row in await query.values(key):
        counts[row[key]] = counts.get(row[key], 0) + 1
    return counts


async def about_resident(resident_id: int) -> list[dict[str, Any]]:
    """For the resident's data export: the camera captures of their access events and who
    opened each (the footage itself is not exported; the resident can ask the property)."""
    event_ids = await AccessEvent.filter(
        Q(resident_id=resident_id) | Q(requested_by_id=resident_id)
    ).values_list("id", flat=True)
    if not event_ids:
        return []
    rows = await VideoCapture.filter(access_event_id__in=list(event_ids)).order_by("id")
    reads = await AuditLog.filter(
        target_type="video_capture", target_id__in=[str(r.id) for r in rows] or ["-"]
    ).order_by("id")
    opened: dict[str, list[dict[str, Any]]] = {}
    for a in reads:
        opened.setdefault(a.target_id, []).append(
            {"at": a.created_at, "staff_id": a.actor_id, "reason": a.details.get("reason", "")}
        )
    return [
        {
            "id": r.id,
            "access_event_id": r.access_event_id,
            "camera_id": r.camera_id,
            "kind": r.kind.value,
            "state": r.state.value,
            "taken_at": r.start_at,
            "opened_by": opened.get(str(r.id), []),
        }
        for r in rows
    ]


STALE_PENDING_S = 300  # a capture still pending this long after its end was interrupted


async def fail_interrupted(now: datetime | None = None) -> int:
    """Captures left pending by a process that stopped mid-way are marked failed, so the
    console says what happened instead of "pending" forever."""
    cutoff = (now or utcnow()) - timedelta(seconds=STALE_PENDING_S)
    return await VideoCapture.filter(state=CaptureState.PENDING, end_at__lt=cutoff).update(
        state=CaptureState.FAILED, error="interrupted (the video process stopped)"
    )


async def purge_expired(settings: Any, store: CaptureStore) -> int:
    """Delete snapshots and clips past their retention; returns how many were deleted."""
    now = utcnow()
    snapshot_cutoff = now - timedelta(days=settings.snapshot_retention_days)
    default_clip_cutoff = now - timedelta(days=settings.video_clip_retention_days)
    clip_cutoffs = {
        p.community_id: now - timedelta(days=p.clip_retention_days)
        for p in await CommunityVideoPolicy.all()
    }
    due: list[VideoCapture] = []
    live = (CaptureState.READY, CaptureState.FAILED, CaptureState.PENDING)
    due += await VideoCapture.filter(
        kind=CaptureKind.SNAPSHOT, state__in=live, created_at__lt=snapshot_cutoff
    )
    oldest_cutoff = max([default_clip_cutoff, *clip_cutoffs.values()])
    for clip in await VideoCapture.filter(
        kind=CaptureKind.CLIP, state__in=live, created_at__lt=oldest_cutoff
    ):
        if clip.created_at < clip_cutoffs.get(clip.community_id, default_clip_cutoff):
            due.append(clip)
    counts: dict[int, int] = {}
    for capture in due:
        if capture.ref:
            store.delete(capture.ref)
        await VideoCapture.filter(id=capture.id).update(state=CaptureState.DELETED, ref="")
        counts[capture.community_id] = counts.get(capture.community_id, 0) + 1
    for community_id, n in counts.items():
        await audit.record(
            "video.capture.deleted",
            actor_type="system",
            actor_id=None,
            community_id=community_id,
            details={"count": n, "reason": "retention"},
        )
    return len(due)
