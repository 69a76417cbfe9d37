"""Who an outbox event reaches, resolved when it is delivered (not when it is emitted):
a room's members are those approved at delivery time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Q

from models import (
    Membership,
    MembershipState,
    NotificationPreference,
    Resident,
    StaffAccount,
    StaffRole,
)


@dataclass(frozen=True)
class Recipient:
    kind: str  # resident | staff
    id: int
    language: str = "zh"
    openid: str | None = None


CHUNK = 5000  # ids per IN list: both databases cap a statement's parameters near 32,000


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def resolve(community_id: int | None, spec: dict[str, Any]) -> list[Recipient]:
    resident_ids = set(spec.get("residents") or ())
    for rooms in _chunks(list(spec.get("rooms") or ())):  # a notice may go to 50,000 flats
        resident_ids |= set(
            await Membership.filter(room_id__in=rooms, state=MembershipState.APPROVED).values_list(
                "resident_id", flat=True
            )
        )
    staff_ids = set(spec.get("staff") or ())
    if spec.get("staff_roles") and community_id is not None:
        staff_ids |= set(
            await StaffRole.filter(
                community_id=community_id, role__in=spec["staff_roles"]
            ).values_list("staff_id", flat=True)
        )
    found: list[Recipient] = []
    for ids in _chunks(sorted(resident_ids)):
        rows = await Resident.filter(id__in=ids).values("id", "language", "openid")
        found += [Recipient("resident", r["id"], r["language"] or "zh", r["openid"]) for r in rows]
    if staff_ids:
        rows = await StaffAccount.filter(id__in=sorted(staff_ids), is_active=True).values("id")
        found += [Recipient("staff", r["id"]) for r in rows]
    return found


async def muted(event_type: str, recipients: list[Recipient]) -> set[tuple[str, int]]:
    """(kind, id) of recipients who muted this type."""
    if not recipients:
        return set()
    out: set[tuple[str, int]] = set()
    for kind in ("resident", "staff"):
        for ids in _chunks([r.id for r in recipients if r.kind == kind]):
            rows = await NotificationPreference.filter(
                Q(subject_type=kind, subject_id__in=ids), event_type=event_type, muted=True
            ).values("subject_type", "subject_id")
            out |= {(r["subject_type"], r["subject_id"]) for r in rows}
    return out
