"""PIPL rights and the operator's duties: a resident's data export (access and
portability, art. 45), the retention/deletion report, the processing records and the
count of people whose face information is held (filing due at 100,000).

The export is assembled from sources, one per kind of record; another capability adds
its own with `register_export(name, fn)` so nothing about a resident is left out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from tortoise.expressions import Q

from anxin.clock import utcnow
from anxin.errors import forbidden
from auth.permissions import Action, Principal, authorize, staff_communities
from domain import audit
from domain.community.period import community_period
from domain.faces.records import DELETIONS, record_out
from models import (
    AccessCard,
    AccessEvent,
    AuditLog,
    BlocklistEntry,
    EnrollmentState,
    FaceConsent,
    FaceDelivery,
    FaceEnrollment,
    FaceRecord,
    Membership,
    Notification,
    NotificationPreference,
    RefreshToken,
    Resident,
    WeChatSubscription,
)

ExportSource = Callable[[int], Awaitable[list[dict[str, Any]]]]
# Never exported: secrets and encrypted biometrics (the export is not a copy of the face).
_HIDDEN = {
    "photo_enc",
    "embedding_enc",
    "secret_enc",
    "token_hash",
    "pass_private_key_enc",
    "duplicate_of",
    "family",
}


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in _HIDDEN} for r in rows]


async def _memberships(rid: int) -> list[dict[str, Any]]:
    rows = (
        await Membership.filter(resident_id=rid)
        .order_by("id")
        .prefetch_related("room__unit", "room__building", "community")
    )
    return [
        {
            "id": m.id,
            "community_id": m.community_id,
            "community": m.community.name,
            "building": m.room.building.name,
            "unit": m.room.unit.name,
            "room": m.room.number,
            "role": m.role.value,
            "state": m.state.value,
            "move_in": m.move_in,
            "move_out": m.move_out,
            "created_at": m.created_at,
            "decided_at": m.decided_at,
            "decision_reason": m.decision_reason,
        }
        for m in rows
    ]


async def _consents(rid: int) -> list[dict[str, Any]]:
    rows = await FaceConsent.filter(resident_id=rid).order_by("id").prefetch_related("text")
    return [
        {
            "id": c.id,
            "community_id": c.community_id,
            "purpose": c.purpose.value,
            "version": c.text.version,
            "text_zh": c.text.text_zh,
            "text_en": c.text.text_en,
            "given_by": c.given_by.value,
            "granted_at": c.granted_at,
            "withdrawn_at": c.withdrawn_at,
        }
        for c in rows
    ]


async def _audit(rid: int) -> list[dict[str, Any]]:
    memberships = [
        str(i) for i in await Membership.filter(resident_id=rid).values_list("id", flat=True)
    ]
    q = (
        Q(actor_type="resident", actor_id=rid)
        | Q(target_type="resident", target_id=str(rid))
        | Q(target_type="membership", target_id__in=memberships or ["-"])
    )
    return _clean(await AuditLog.filter(q).order_by("id").values())


EXPORT_SOURCES: dict[str, ExportSource] = {
    "memberships": _memberships,
    "face_consents": _consents,
    "face_enrollments": lambda rid: _values(FaceEnrollment.filter(resident_id=rid)),
    "face_deliveries": lambda rid: _deliveries(rid),
    "face_processing_records": lambda rid: _values(FaceRecord.filter(resident_id=rid)),
    "access_events": lambda rid: _values(
        AccessEvent.filter(Q(resident_id=rid) | Q(requested_by_id=rid))
    ),
    "access_cards": lambda rid: _values(AccessCard.filter(resident_id=rid)),
    "blocklist_entries": lambda rid: _values(BlocklistEntry.filter(resident_id=rid)),
    "notifications": lambda rid: _values(
        Notification.filter(recipient_type="resident", recipient_id=rid)
    ),
    "notification_preferences": lambda rid: _values(
        NotificationPreference.filter(subject_type="resident", subject_id=rid)
    ),
    "wechat_subscriptions": lambda rid: _values(WeChatSubscription.filter(resident_id=rid)),
    "logins": lambda rid: _values(RefreshToken.filter(subject_type="resident", subject_id=rid)),
    "audit_entries": _audit,
}


async def _deliveries(rid: int) -> list[dict[str, Any]]:
    ids = await FaceEnrollment.filter(resident_id=rid).values_list("id", flat=True)
    return await _values(FaceDelivery.filter(enrollment_id__in=list(ids) or [0]))


async def _values(query: Any) -> list[dict[str, Any]]:
    return _clean(await query.order_by("id").values())


def register_export(name: str, source: ExportSource) -> None:
    """Another capability's records about a resident (passes, visitors, vehicles ...)."""
    EXPORT_SOURCES[name] = source


async def export_resident(resident: Resident) -> dict[str, Any]:
    rid = resident.id
    person = _clean(await Resident.filter(id=rid).values())[0]
    out: dict[str, Any] = {
        "format": "anxin.personal-data-export/1",
        "generated_at": utcnow(),
        "resident": person,
        "note_zh": "人脸照片与特征值不在导出之列：照片在审核后即删除，特征值仅以加密形式存于"
        "门禁终端或服务器，仅用于通行核验。",
        "note_en": "Face photos and templates are not exported: photos are deleted after "
        "review and templates exist only encrypted on terminals or the server, "
        "for entry only.",
    }
    for name, source in EXPORT_SOURCES.items():
        out[name] = await source(rid)
    await audit.record(
        "privacy.export", actor_type="resident", actor_id=rid, target_type="resident", target_id=rid
    )
    return out


async def deletion_report(
    principal: Principal,
    community_id: int,
    since: datetime | date | None,
    until: datetime | date | None,
) -> dict[str, Any]:
    authorize(principal, Action.PRIVACY_REPORT, community_id)
    since, until = await community_period(community_id, since, until)
    q = FaceRecord.filter(community_id=community_id, action__in=DELETIONS)
    if since:
        q = q.filter(created_at__gte=since)
    if until:
        q = q.filter(created_at__lt=until)
    rows = await q.order_by("id").limit(5000)
    summary: dict[str, int] = {}
    for r in rows:
        key = f"{r.action}:{r.reason}"
        summary[key] = summary.get(key, 0) + int(r.details.get("count", 1))
    held = FaceEnrollment.filter(community_id=community_id)
    return {
        "community_id": community_id,
        "summary": summary,
        "deletions": [record_out(r) for r in rows],
        "held_now": {
            "pending_photos": await held.filter(photo_enc__not_isnull=True).count(),
            "server_embeddings": await held.filter(embedding_enc__not_isnull=True).count(),
            "approved_faces": await held.filter(state=EnrollmentState.APPROVED).count(),
            "awaiting_move_out_purge": await held.filter(
                purge_after__not_isnull=True,
                state__in=[EnrollmentState.PENDING, EnrollmentState.APPROVED],
            ).count(),
        },
    }


async def processing_records(
    principal: Principal,
    community_id: int,
    *,
    resident_id: int | None = None,
    action: str | None = None,
    limit: int,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first; `before` an id: the records older than it (keyset paging)."""
    authorize(principal, Action.PRIVACY_REPORT, community_id)
    q = FaceRecord.filter(community_id=community_id)
    if resident_id is not None:
        q = q.filter(resident_id=resident_id)
    if action:
        q = q.filter(action=action)
    if before is not None:
        q = q.filter(id__lt=before)
    return [record_out(r) for r in await q.order_by("-id").limit(limit)]


async def face_count(principal: Principal, warning_at: int) -> dict[str, Any]:
    """People whose face information this processor holds (server or terminals)."""
    if principal.is_operator:
        scope: list[int] | None = None
    else:
        scope = staff_communities(principal, Action.PRIVACY_REPORT)
        if not scope:
            raise forbidden("privacy report needs the admin role", "需要管理员权限")
    q = FaceEnrollment.filter(state__in=[EnrollmentState.PENDING, EnrollmentState.APPROVED])
    if scope is not None:
        q = q.filter(community_id__in=scope)
    people = len(set(await q.values_list("resident_id", flat=True)))
    warn = people >= warning_at
    return {
        "scope": "all" if scope is None else scope,
        "people_with_face_data": people,
        "warning_at": warning_at,
        "filing_threshold": 100_000,
        "warning": warn,
        "message_zh": "持有人脸信息人数接近十万，须向省级网信部门备案" if warn else "",
        "message_en": (
            "approaching 100,000 people: file with the provincial cyberspace administration"
        )
        if warn
        else "",
    }
