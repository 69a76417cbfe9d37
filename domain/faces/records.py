"""The face-data processing record (PIPL art. 54-55): one row per read, match, sync,
deletion; queryable by community, resident, action and time."""

from __future__ import annotations

from typing import Any

from models import FaceRecord

# Actions that delete face data: the retention report is these rows.
DELETIONS = ("photo.deleted", "embedding.deleted", "face.removed", "snapshot.deleted")


async def record(
    action: str,
    *,
    actor_type: str,
    actor_id: int | None = None,
    community_id: int | None = None,
    resident_id: int | None = None,
    enrollment_id: int | None = None,
    device_id: int | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> FaceRecord:
    return await FaceRecord.create(
        action=action,
        actor_type=actor_type,
        actor_id=actor_id,
        community_id=community_id,
        resident_id=resident_id,
        enrollment_id=enrollment_id,
        device_id=device_id,
        reason=reason[:64],
        details=details or {},
    )


def record_out(r: FaceRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "at": r.created_at,
        "action": r.action,
        "actor_type": r.actor_type,
        "actor_id": r.actor_id,
        "community_id": r.community_id,
        "resident_id": r.resident_id,
        "enrollment_id": r.enrollment_id,
        "device_id": r.device_id,
        "reason": r.reason,
        "details": r.details,
    }
