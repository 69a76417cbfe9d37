"""Binding residents to flats: join requests, staff decisions, move-out, blocking."""

from __future__ import annotations

import logging
import uuid
from datetime import date
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from anxin.bus import Bus
from anxin.channels import RESIDENT_BLOCKED
from anxin.clock import utcnow
from anxin.errors import DomainError, Forbidden, Invalid, RateLimited, conflict, not_found
from anxin.runtime import Runtime
from auth.permissions import Action, AuditActor, Principal, authorize, scoped_row, staff_communities
from domain import audit
from domain.faces.service import restore_on_return
from domain.households import leaving
from models import (
    Departure,
    DepartureKind,
    Membership,
    MembershipRole,
    MembershipState,
    Resident,
    ResidentBlock,
    Room,
)
from notifications.catalog import EventType
from notifications.outbox import emit
from notifications.views import room_label

log = logging.getLogger(__name__)

MAX_OPEN_REQUESTS = 5


async def request_join(
    resident: Resident, room_id: int, role: MembershipRole, note: str = ""
) -> Membership:
    room = await Room.get_or_none(id=room_id)
    if room is None:
        raise not_found("room")
    if await is_blocked(resident.id, room.community_id):
        raise blocked_here()
    existing = await Membership.filter(
        resident_id=resident.id,
        room_id=room_id,
        state__in=[MembershipState.PENDING, MembershipState.APPROVED],
    ).first()
    if existing is not None:
        raise conflict(
            "membership_exists",
            "已申请或已绑定该房屋",
            "already requested or bound to this room",
            {"membership_id": existing.id, "state": existing.state.value},
        )
    open_requests = await Membership.filter(
        resident_id=resident.id, state=MembershipState.PENDING
    ).count()
    if open_requests >= MAX_OPEN_REQUESTS:
        raise RateLimited("too_many_requests_open", "待审核的申请过多", "too many pending requests")
    membership = await Membership.create(
        resident_id=resident.id,
        room_id=room.id,
        community_id=room.community_id,
        role=role,
        note=note,
    )
    await audit.record(
        "membership.requested",
        actor_type="resident",
        actor_id=resident.id,
        community_id=room.community_id,
        target_type="membership",
        target_id=membership.id,
        details={"room_id": room.id, "role": role.value},
    )
    return membership


async def my_memberships(resident: Resident) -> list[Membership]:
    return (
        await Membership.filter(resident_id=resident.id)
        .exclude(state=MembershipState.REJECTED)
        .order_by("-id")
        .prefetch_related("room__unit", "room__building", "room__community")
    )


async def household_members(resident: Resident, room_id: int) -> list[Membership]:
    """Members of a room the resident belongs to (approved), or not found."""
    mine = await Membership.filter(
        resident_id=resident.id, room_id=room_id, state=MembershipState.APPROVED
    ).exists()
    if not mine:
        raise not_found("household")
    return await Membership.filter(
        room_id=room_id, state=MembershipState.APPROVED
    ).prefetch_related("resident")


async def _scoped_membership(
    principal: Principal, membership_id: int, action: Action
) -> Membership:
    return await scoped_row(principal, action, Membership, membership_id, "membership")


async def list_memberships(
    principal: Principal,
    community_id: int,
    *,
    state: MembershipState | None = None,
    limit: int,
    before: int | None = None,
) -> list[Membership]:
    """Newest first; `before` an id: the rows older than it (keyset paging)."""
    authorize(principal, Action.MEMBERSHIP_READ, community_id)
    query = Membership.filter(community_id=community_id)
    if state is not None:
        query = query.filter(state=state)
    if before is not None:
        query = query.filter(id__lt=before)
    return (
        await query.order_by("-id")
        .limit(limit)
        .prefetch_related("resident", "room__unit", "room__building")
    )


async def decide(
    principal: Principal,
    membership_id: int,
    approve: bool,
    reason: str,
    runtime: Runtime | None = None,
) -> Membership:
    """Approve or reject a request. Two reviewers at once: one conditional update decides,
    the other gets a Conflict. Approval of someone moving back in cancels the pending deletion
    of their face (only while their consent is still valid; docs/faces.md)."""
    membership = await _scoped_membership(principal, membership_id, Action.MEMBERSHIP_DECIDE)
    if not approve and not reason.strip():
        raise Invalid("reason_required", "驳回须填写原因", "a rejection needs a reason")
    now = utcnow()
    state = MembershipState.APPROVED if approve else MembershipState.REJECTED
    changes: dict[str, Any] = {
        "state": state,
        "decision_reason": reason,
        "decided_by_id": principal.id,
        "decided_at": now,
        "updated_at": now,
    }
    if approve and membership.move_in is None:
        changes["move_in"] = now.date()
    async with in_transaction():
        won = await Membership.filter(id=membership.id, state=MembershipState.PENDING).update(
            **changes
        )
        await membership.refresh_from_db()
        if not won:
            raise conflict(
                "membership_not_pending",
                "该申请已处理",
                "request already decided",
                {"state": membership.state.value},
            )
        await audit.record(
            "membership.approved" if approve else "membership.rejected",
            **principal.audit_actor(),
            community_id=membership.community_id,
            target_type="membership",
            target_id=membership.id,
            details={"reason": reason},
        )
    if approve and runtime is not None:
        await restore_on_return(runtime, membership.resident_id, membership.community_id)
    return membership


# States a membership can end from (a request withdrawn, a home left).
_ENDABLE = (MembershipState.APPROVED, MembershipState.PENDING, MembershipState.SUSPENDED)
# States staff can move someone out of (a blocked resident's home is suspended).
_MOVABLE = (MembershipState.APPROVED, MembershipState.SUSPENDED)


async def end_membership(
    principal: Principal,
    runtime: Runtime,
    membership_id: int,
    reason: str,
    move_out: date | None,
) -> Membership:
    """Move-out: one transaction ends the membership and everything the person held
    through it (domain/households/leaving.py); two removals at once: one wins, the other
    gets a Conflict."""
    membership = await _scoped_membership(principal, membership_id, Action.MEMBERSHIP_END)
    # A blocked resident (suspended membership) can move out too.
    if membership.state not in _MOVABLE:
        raise _not_active(membership)
    return await _end(
        runtime,
        membership,
        DepartureKind.MOVED_OUT,
        reason,
        move_out,
        principal.audit_actor(),
        _MOVABLE,
    )


async def leave_household(runtime: Runtime, resident: Resident, membership_id: int) -> Membership:
    membership = await Membership.get_or_none(id=membership_id, resident_id=resident.id)
    if membership is None or membership.state not in _ENDABLE:
        raise not_found("membership")
    return await _end(
        runtime,
        membership,
        DepartureKind.LEFT,
        "resident left",
        None,
        {"actor_type": "resident", "actor_id": resident.id},
        _ENDABLE,
    )


def _not_active(membership: Membership) -> DomainError:
    return conflict(
        "membership_not_active",
        "该住户关系不是有效状态",
        "membership is not active",
        {"state": membership.state.value},
    )


async def _end(
    runtime: Runtime,
    membership: Membership,
    kind: DepartureKind,
    reason: str,
    move_out: date | None,
    actor: AuditActor,
    from_states: tuple[MembershipState, ...],
) -> Membership:
    now = utcnow()
    was_member = membership.state == MembershipState.APPROVED
    departure = None
    async with in_transaction():
        won = await Membership.filter(id=membership.id, state__in=list(from_states)).update(
            state=MembershipState.ENDED,
            ended_at=now,
            move_out=move_out or now.date(),
            decision_reason=reason,
            updated_at=now,
        )
        await membership.refresh_from_db()
        if not won:
            raise _not_active(membership)
        await audit.record(
            "membership.ended",
            **actor,
            community_id=membership.community_id,
            target_type="membership",
            target_id=membership.id,
            details={"reason": reason, "resident_id": membership.resident_id},
        )
        if was_member:
            # The resident is told through the outbox, committed with the move-out itself.
            await emit(
                EventType.MEMBERSHIP_ENDED,
                community_id=membership.community_id,
                residents=[membership.resident_id],
                payload={**await room_label(membership.room_id), "room_id": membership.room_id},
                dedupe_key=f"membership_ended:{membership.id}",
            )
            departure = await leaving.record_departure(
                runtime,
                leaving.Leaving(
                    kind,
                    membership.resident_id,
                    membership.community_id,
                    (membership.room_id,),
                    reason,
                    actor,
                ),
            )
    if departure is not None:
        await finish_soon(runtime, departure)
    return membership


def blocked_here() -> Forbidden:
    return Forbidden(
        "blocked_in_community",
        "您在该小区的住户权限已被物业停用",
        "you are blocked in this community by its staff",
    )


async def is_blocked(resident_id: int, community_id: int) -> bool:
    return await ResidentBlock.exists(resident_id=resident_id, community_id=community_id)


# Memberships that make someone a resident of a community for blocking: lives there now
# (approved, or already suspended) or did (ended after an approval).
_LIVED_HERE = (MembershipState.APPROVED, MembershipState.SUSPENDED, MembershipState.ENDED)


async def finish_soon(runtime: Runtime, departure: Departure) -> None:
    """Tell gates and caches now; if that fails the job `finish_departures` does it."""
    try:
        await leaving.finish(runtime, departure)
    except Exception:
        log.exception("departure %s committed; the job will finish it", departure.id)


async def set_blocked(
    principal: Principal,
    bus: Bus,
    resident_id: int,
    community_id: int,
    blocked: bool,
    reason: str,
    runtime: Runtime | None = None,
) -> bool:
    """Staff block a resident in their community, and only there: the resident's
    memberships here are suspended (no door, no pass, code or intercom here), open
    requests here are rejected and new ones refused; in the same transaction everything
    they hold here ends as for a move-out and their face here is due for deletion now (a
    departure, domain/households/leaving.py), finished right after. Their account and
    homes elsewhere are untouched. Only a resident who lives or lived here can be
    blocked; a stranger's request is rejected instead. Unblocking approves the suspended
    memberships again (what the departure ended stays ended)."""
    authorize(principal, Action.RESIDENT_BLOCK, community_id)
    lived_here = (
        await Membership.filter(
            resident_id=resident_id, community_id=community_id, state__in=_LIVED_HERE
        )
        .filter(Q(decided_at__not_isnull=True) | Q(state__in=_LIVED_HERE[:2]))
        .exists()
    )
    if not lived_here:
        if await Membership.exists(resident_id=resident_id, community_id=community_id):
            # Their only link is a request: staff can see it, so say what to do instead.
            raise conflict(
                "not_a_resident_here",
                "该用户尚未在本小区入住，请直接驳回其申请",
                "not a resident of this community: reject the request instead",
            )
        raise not_found("resident")
    now = utcnow()
    departure = None
    async with in_transaction():
        if blocked:
            _, created = await ResidentBlock.get_or_create(
                resident_id=resident_id,
                community_id=community_id,
                defaults={"reason": reason, "blocked_by_id": principal.id},
            )
            await Membership.filter(
                resident_id=resident_id,
                community_id=community_id,
                state=MembershipState.APPROVED,
            ).update(state=MembershipState.SUSPENDED)
            await Membership.filter(
                resident_id=resident_id,
                community_id=community_id,
                state=MembershipState.PENDING,
            ).update(
                state=MembershipState.REJECTED,
                decision_reason="blocked",
                decided_by_id=principal.id,
                decided_at=now,
            )
            if created and runtime is not None:
                departure = await leaving.block_departure(
                    runtime, resident_id, community_id, reason, principal.audit_actor()
                )
        else:
            created = bool(
                await ResidentBlock.filter(
                    resident_id=resident_id, community_id=community_id
                ).delete()
            )
            await Membership.filter(
                resident_id=resident_id,
                community_id=community_id,
                state=MembershipState.SUSPENDED,
            ).update(state=MembershipState.APPROVED)
        if created:
            await audit.record(
                "resident.blocked" if blocked else "resident.unblocked",
                **principal.audit_actor(),
                community_id=community_id,
                target_type="resident",
                target_id=resident_id,
                details={"reason": reason},
            )
    if departure is not None:
        await finish_soon(runtime, departure)  # type: ignore[arg-type]
    if blocked and created:
        # Caches only; the departure did the rest.
        await bus.publish(
            RESIDENT_BLOCKED,
            {
                "id": uuid.uuid4().hex,
                "resident_id": resident_id,
                "community_id": community_id,
                **principal.audit_actor(),
            },
        )
    return blocked


async def list_blocks(principal: Principal, community_id: int) -> list[ResidentBlock]:
    authorize(principal, Action.MEMBERSHIP_READ, community_id)
    return (
        await ResidentBlock.filter(community_id=community_id)
        .order_by("-id")
        .prefetch_related("resident")
    )


def pending_queue_communities(principal: Principal) -> list[int]:
    return staff_communities(principal, Action.MEMBERSHIP_DECIDE)
