"""Who an outbox event reaches, resolved when it is delivered (not when it is emitted):
a room's members are those approved at delivery time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models import (
    Membership,
    MembershipState,
    NotificationPreference,
    Resident,
    StaffAccount,
    StaffRole,
)
from notifications.fanout_sql import rows_by_id


@dataclass(frozen=True)
class Recipient:
    kind: str  # resident | staff
    id: int
    language: str = "zh"
    openid: str | None = None


async def resolve(community_id: int | None, spec: dict[str, Any]) -> list[Recipient]:
    resident_ids = set(spec.get("residents") or ())
    rooms = sorted({int(r) for r in spec.get("rooms") or ()})  # a notice: 50,000 flats
    if rooms:
        resident_ids |= {
            m["resident_id"]
            for m in await rows_by_id(Membership, ["resident_id", "state"], rooms, key="room_id")
            if m["state"] == MembershipState.APPROVED
        }
    staff_ids = set(spec.get("staff") or ())
    if spec.get("staff_roles") and community_id is not None:
        staff_ids |= set(
            await StaffRole.filter(
                community_id=community_id, role__in=spec["staff_roles"]
            ).values_list("staff_id", flat=True)
        )
    rows = await rows_by_id(Resident, ["id", "language", "openid"], sorted(resident_ids))
    found = [Recipient("resident", r["id"], r["language"] or "zh", r["openid"]) for r in rows]
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
        ids = sorted({r.id for r in recipients if r.kind == kind})
        rows = await rows_by_id(
            NotificationPreference,
            ["subject_type", "subject_id", "event_type", "muted"],
            ids,
            key="subject_id",
        )
        out |= {
            (kind, r["subject_id"])
            for r in rows
            if r["subject_type"] == kind and r["event_type"] == event_type and r["muted"]
        }
    return out
