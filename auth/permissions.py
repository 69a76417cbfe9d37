"""Who may do what: the one permission check every route uses.

Staff rights come from `StaffRole` rows per community, read on every request (a role
taken away counts at once, not when the token expires). Residents act only on rooms
where their membership is approved. Rows of another community answer "not found", so
ids cannot be probed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict

from anxin.errors import forbidden, not_found, unauthorized
from models import (
    Membership,
    MembershipState,
    Resident,
    StaffAccount,
    StaffRole,
    StaffRoleName,
    bulk,
)

A, P, G = StaffRoleName.ADMIN, StaffRoleName.APPROVER, StaffRoleName.GUARD
S = StaffRoleName.SECURITY


class Action(StrEnum):
    COMMUNITY_READ = "community.read"
    COMMUNITY_MANAGE = "community.manage"  # tree, import, staff
    MEMBERSHIP_READ = "membership.read"
    MEMBERSHIP_DECIDE = "membership.decide"
    MEMBERSHIP_END = "membership.end"
    RESIDENT_BLOCK = "resident.block"
    FACE_REVIEW = "face.review"
    FACE_ENROLL_IN_PERSON = "face.enroll_in_person"
    DEVICE_READ = "device.read"
    DEVICE_MANAGE = "device.manage"
    ACCESS_LOG_READ = "access_log.read"
    VISITOR_REGISTER_READ = "visitor_register.read"
    PASS_REVOKE = "pass.revoke"
    BLOCKLIST_MANAGE = "blocklist.manage"
    ALARM_HANDLE = "alarm.handle"
    AUDIT_READ = "audit.read"
    PRIVACY_REPORT = "privacy.report"
    DOOR_OPEN = "door.open"  # a guard opening a gate from the console
    CARD_MANAGE = "card.manage"  # issue and revoke access cards
    NOTICE_SEND = "notice.send"  # property notices (物业通知) to residents
    VIDEO_LIVE = "video.live"  # watch a camera live (every viewing is audited)
    VIDEO_FOOTAGE_READ = "video.footage.read"  # open a snapshot or clip (audited)
    # The police link: alerts and tracing belong to the security role alone.
    POLICE_AGREEMENT_READ = "police.agreement.read"  # terms and the upload record
    POLICE_ALERT_HANDLE = "police.alert.handle"
    TRACE_QUERY = "police.trace.query"
    TRACE_APPROVE = "police.trace.approve"  # the second approver of a bulk export


POLICY: dict[Action, frozenset[StaffRoleName]] = {
    Action.COMMUNITY_READ: frozenset({A, P, G, S}),
    Action.COMMUNITY_MANAGE: frozenset({A}),
    Action.MEMBERSHIP_READ: frozenset({A, P, G}),
    Action.MEMBERSHIP_DECIDE: frozenset({A, P}),
    Action.MEMBERSHIP_END: frozenset({A, P}),
    Action.RESIDENT_BLOCK: frozenset({A}),
    Action.FACE_REVIEW: frozenset({A, P}),
    Action.FACE_ENROLL_IN_PERSON: frozenset({A, P}),
    Action.DEVICE_READ: frozenset({A, G}),
    Action.DEVICE_MANAGE: frozenset({A}),
    Action.ACCESS_LOG_READ: frozenset({A, G}),
    Action.VISITOR_REGISTER_READ: frozenset({A, G}),
    Action.PASS_REVOKE: frozenset({A, G}),
    Action.BLOCKLIST_MANAGE: frozenset({A, G}),
    Action.ALARM_HANDLE: frozenset({A, G}),
    Action.AUDIT_READ: frozenset({A}),
    Action.PRIVACY_REPORT: frozenset({A}),
    Action.DOOR_OPEN: frozenset({A, G}),
    Action.CARD_MANAGE: frozenset({A, P}),
    Action.NOTICE_SEND: frozenset({A, P}),
    Action.VIDEO_LIVE: frozenset({A, G}),
    Action.VIDEO_FOOTAGE_READ: frozenset({A, G}),
    Action.POLICE_AGREEMENT_READ: frozenset({A, S}),
    Action.POLICE_ALERT_HANDLE: frozenset({S}),
    Action.TRACE_QUERY: frozenset({S}),
    Action.TRACE_APPROVE: frozenset({S}),
}


class AuditActor(TypedDict):
    """Who did it, as the audit trail records it (`audit.record(..., **p.audit_actor())`)."""

    actor_type: str
    actor_id: int | None


@dataclass
class Principal:
    kind: str  # "resident" | "staff"
    id: int
    resident: Resident | None = None
    staff: StaffAccount | None = None
    roles: dict[int, set[StaffRoleName]] = field(default_factory=dict)

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def is_operator(self) -> bool:
        return bool(self.staff and self.staff.is_operator)

    def community_ids(self) -> set[int]:
        return set(self.roles)

    def audit_actor(self) -> AuditActor:
        return {"actor_type": self.kind, "actor_id": self.id}


_RESIDENT_BY_ID: str | None = None


def _resident_sql(also: str = "") -> str:
    columns = bulk.columns(Resident)
    return f'SELECT {columns}{also} FROM "{Resident._meta.db_table}" WHERE "id" = ?'


async def _resident(resident_id: int) -> Resident | None:
    """The resident's row, read now (a deleted account is refused on its next request), in
    one prepared statement: the ORM builds the same query anew for every request."""
    global _RESIDENT_BY_ID
    if _RESIDENT_BY_ID is None:
        _RESIDENT_BY_ID = _resident_sql()
    rows = await bulk.select(Resident, _RESIDENT_BY_ID, [resident_id])
    return Resident._init_from_db(**rows[0]) if rows else None


def _resident_principal(resident: Resident | None) -> Principal:
    if resident is None or resident.deleted_at is not None:
        raise unauthorized("token_invalid", "invalid token", "登录凭证无效")
    # A block is per community (ResidentBlock): it suspends the memberships there and
    # leaves the account, and every other community, as they are.
    return Principal("resident", resident.id, resident=resident)


@functools.cache
def _resident_with_sql(also: str, rows: str) -> str:
    columns = ", ".join(f'r."{c}" AS "_r_{c}"' for c in sorted(Resident._meta.db_fields))
    sql = f"SELECT {columns}" + (f", {also}" if also else "")
    table = Resident._meta.db_table
    if rows:
        sql += f', p.* FROM "{table}" r LEFT JOIN ({rows}) p ON 1 = 1'
    else:
        sql += f' FROM "{table}" r'
    return sql + ' WHERE r."id" = ?' + (' ORDER BY p."id" DESC' if rows else "")


async def resident_principal_with(
    resident_id: int,
    also: str = "",
    values: Sequence[Any] = (),
    *,
    rows: str = "",
    row_values: Sequence[Any] = (),
) -> tuple[Principal, dict[str, Any], list[dict[str, Any]]]:
    """`load_principal` for a resident, and what the route reads, in the same statement:
    `also`, scalar subqueries (`(SELECT COUNT(*) ...) AS "_n"`, with their `values`), and
    `rows`, a SELECT of the route's rows (with an "id" column; `row_values`), returned
    newest (highest id) first. One round trip instead of two; the caller's row is read now
    and refused exactly as `load_principal` refuses it. Returns the principal, the values
    of `also` and the rows."""
    found = await bulk.select(
        Resident, _resident_with_sql(also, rows), [*values, *row_values, resident_id]
    )
    resident = (
        Resident._init_from_db(**{c: found[0][f"_r_{c}"] for c in Resident._meta.db_fields})
        if found
        else None
    )
    principal = _resident_principal(resident)
    # No row of the route's: one row, the caller's, with NULLs for the route's columns.
    return principal, found[0], [row for row in found if rows and row["id"] is not None]


async def load_principal(subject_type: str, subject_id: int) -> Principal:
    if subject_type == "resident":
        return _resident_principal(await _resident(subject_id))
    staff = await StaffAccount.get_or_none(id=subject_id)
    if staff is None or not staff.is_active:
        raise unauthorized("token_invalid", "invalid token", "登录凭证无效")
    roles: dict[int, set[StaffRoleName]] = {}
    for row in await StaffRole.filter(staff_id=staff.id).values("community_id", "role"):
        roles.setdefault(row["community_id"], set()).add(StaffRoleName(row["role"]))
    return Principal("staff", staff.id, staff=staff, roles=roles)


def authorize(principal: Principal, action: Action, community_id: int) -> None:
    """Raise unless `principal` (staff) may do `action` in `community_id`."""
    if not principal.is_staff:
        raise forbidden("staff only", "仅限物业人员")
    held = principal.roles.get(community_id)
    if not held:
        # Not their community: indistinguishable from a community that does not exist.
        raise not_found("community")
    if not held & POLICY[action]:
        raise forbidden(f"role does not allow {action.value}", "当前岗位无此权限")


async def scoped_row(
    principal: Principal, action: Action, model: Any, row_id: int, what: str
) -> Any:
    """The row `row_id` of `model` (which has a `community_id`) if `principal` may do
    `action` on it. Residents are refused before the lookup, and another community's row
    answers exactly like a missing one, so nobody learns which ids exist."""
    if not principal.is_staff:
        raise forbidden("staff only", "仅限物业人员")
    row = await model.get_or_none(id=row_id)
    if row is None or not principal.roles.get(row.community_id):
        raise not_found(what)
    authorize(principal, action, row.community_id)
    return row


def staff_communities(principal: Principal, action: Action) -> list[int]:
    """Communities where the staff member may do `action` (for list views)."""
    if not principal.is_staff:
        raise forbidden("staff only", "仅限物业人员")
    return sorted(cid for cid, held in principal.roles.items() if held & POLICY[action])


def require_resident(principal: Principal) -> Resident:
    if principal.resident is None:
        raise forbidden("residents only", "仅限住户使用")
    return principal.resident


async def require_membership(resident_id: int, room_id: int) -> Membership:
    """The resident's approved membership of `room_id`, or not found."""
    membership = await Membership.filter(
        resident_id=resident_id, room_id=room_id, state=MembershipState.APPROVED
    ).first()
    if membership is None:
        raise not_found("household")
    return membership
