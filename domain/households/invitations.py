"""Invitations: staff invite a phone number into a room (by import); only the resident who
has bound that number in the mini-program can accept, and only acceptance makes a
membership. Nobody learns from an invitation whether a number is registered."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from anxin.clock import utcnow
from anxin.errors import conflict, not_found
from auth.permissions import Action, Principal, authorize, scoped_row
from domain import audit
from domain.households.service import blocked_here, is_blocked
from models import Invitation, InvitationState, Membership, MembershipState, Resident


async def my_invitations(resident: Resident) -> list[Invitation]:
    """Open invitations for the resident's bound phone number (none without one)."""
    if not resident.phone:
        return []
    return (
        await Invitation.filter(
            phone=resident.phone, state=InvitationState.PENDING, expires_at__gt=utcnow()
        )
        .order_by("-id")
        .prefetch_related("room__unit", "room__building", "community")
    )


async def _mine(resident: Resident, invitation_id: int) -> Invitation:
    inv = await Invitation.get_or_none(id=invitation_id)
    # Someone else's invitation answers exactly like a missing one.
    if inv is None or not resident.phone or inv.phone != resident.phone:
        raise not_found("invitation")
    if inv.state != InvitationState.PENDING or inv.expires_at <= utcnow():
        raise conflict(
            "invitation_closed",
            "该邀请已失效",
            "this invitation is no longer open",
            {"state": inv.state.value},
        )
    return inv


async def accept(resident: Resident, invitation_id: int) -> Membership:
    """The resident agrees: an approved membership of the invited room (the staff who
    invited vouched for the flat; the resident for themselves)."""
    inv = await _mine(resident, invitation_id)
    if await is_blocked(resident.id, inv.community_id):
        raise blocked_here()
    now = utcnow()
    async with in_transaction():
        # Claim it first: two taps on "accept" make one membership.
        claimed = await Invitation.filter(id=inv.id, state=InvitationState.PENDING).update(
            state=InvitationState.ACCEPTED, decided_at=now, resident_id=resident.id
        )
        if not claimed:
            raise conflict("invitation_closed", "该邀请已失效", "this invitation is no longer open")
        membership = (
            await Membership.filter(
                resident_id=resident.id,
                room_id=inv.room_id,
                state__in=[MembershipState.PENDING, MembershipState.APPROVED],
            )
            .select_for_update()
            .first()
        )
        if membership is None:
            membership = await Membership.create(
                resident_id=resident.id,
                room_id=inv.room_id,
                community_id=inv.community_id,
                role=inv.role,
                state=MembershipState.APPROVED,
            )
        if membership.state == MembershipState.PENDING or membership.decided_at is None:
            membership.state = MembershipState.APPROVED
            membership.decision_reason = "invitation"
            membership.decided_by_id = inv.invited_by_id
            membership.decided_at = now
            membership.move_in = membership.move_in or inv.move_in or now.date()
            await membership.save()
        await Invitation.filter(id=inv.id).update(membership_id=membership.id)
        if not resident.name and inv.name:
            resident.name = inv.name  # as staff know them, until they say otherwise
            await resident.save(update_fields=["name"])
        await audit.record(
            "invitation.accepted",
            actor_type="resident",
            actor_id=resident.id,
            community_id=inv.community_id,
            target_type="membership",
            target_id=membership.id,
            details={"invitation_id": inv.id, "room_id": inv.room_id},
        )
    return membership


async def decline(resident: Resident, invitation_id: int) -> Invitation:
    inv = await _mine(resident, invitation_id)
    await Invitation.filter(id=inv.id, state=InvitationState.PENDING).update(
        state=InvitationState.DECLINED, decided_at=utcnow(), resident_id=resident.id
    )
    await audit.record(
        "invitation.declined",
        actor_type="resident",
        actor_id=resident.id,
        community_id=inv.community_id,
        target_type="invitation",
        target_id=inv.id,
    )
    return await Invitation.get(id=inv.id)


async def list_for_staff(
    principal: Principal,
    community_id: int,
    state: InvitationState | None,
    limit: int,
    offset: int,
) -> list[Invitation]:
    authorize(principal, Action.MEMBERSHIP_READ, community_id)
    query = Invitation.filter(community_id=community_id)
    if state is not None:
        query = query.filter(state=state)
    return (
        await query.order_by("-id")
        .offset(offset)
        .limit(limit)
        .prefetch_related("room__unit", "room__building")
    )


async def withdraw(principal: Principal, invitation_id: int) -> Invitation:
    inv = await scoped_row(
        principal, Action.COMMUNITY_MANAGE, Invitation, invitation_id, "invitation"
    )
    if inv.state != InvitationState.PENDING:
        raise conflict(
            "invitation_closed",
            "该邀请已失效",
            "this invitation is no longer open",
            {"state": inv.state.value},
        )
    await Invitation.filter(id=inv.id).update(state=InvitationState.WITHDRAWN, decided_at=utcnow())
    await audit.record(
        "invitation.withdrawn",
        **principal.audit_actor(),
        community_id=inv.community_id,
        target_type="invitation",
        target_id=inv.id,
    )
    return await Invitation.get(id=inv.id)
