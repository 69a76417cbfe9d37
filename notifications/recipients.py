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
from models.bulk import connection, select
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


# Residents named or approved in the rooms, with whether they muted the type: one
# statement (the common notice: a door opened, a visitor at the gate) instead of three.
_RESIDENTS_PG = (
    "SELECT r.id, r.language, r.openid, {muted} AS muted FROM resident r "
    "WHERE r.id IN (SELECT unnest(?::bigint[]) UNION SELECT m.resident_id FROM membership m "
    "WHERE m.room_id = ANY(?::bigint[]) AND m.state = ?)"
)
_MUTED_PG = _RESIDENTS_PG.format(
    muted="EXISTS (SELECT 1 FROM notification_preference p WHERE p.subject_type = 'resident' "
    "AND p.subject_id = r.id AND p.event_type = ? AND p.muted)"
)
_UNMUTED_PG = _RESIDENTS_PG.format(muted="false")


async def resolve_with_mutes(
    community_id: int | None, spec: dict[str, Any], event_type: str, mandatory: bool
) -> tuple[list[Recipient], set[tuple[str, int]]]:
    """`resolve` and (unless `mandatory`) `muted` together; on PostgreSQL, for a notice to
    residents and rooms only, in one statement."""
    if (
        spec.get("staff")
        or spec.get("staff_roles")
        or connection(Resident).capabilities.dialect != "postgres"
    ):
        recipients = await resolve(community_id, spec)
        return recipients, set() if mandatory else await muted(event_type, recipients)
    residents = sorted({int(r) for r in spec.get("residents") or ()})
    rooms = sorted({int(r) for r in spec.get("rooms") or ()})
    args: list[Any] = [residents, rooms, MembershipState.APPROVED.value]
    rows = await select(
        Resident,
        _UNMUTED_PG if mandatory else _MUTED_PG,
        ([] if mandatory else [event_type]) + args,
    )
    found = [Recipient("resident", r["id"], r["language"] or "zh", r["openid"]) for r in rows]
    return found, {("resident", r["id"]) for r in rows if r["muted"]}
