"""Residents bind to flats; staff decide, end memberships and block residents."""

from __future__ import annotations

from fastapi import APIRouter, Query

from anxin.clock import utcnow
from api.contract import (
    PAGE_DEFAULT,
    RESIDENT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    errors,
    keyset_page,
    page_list,
    page_query,
)
from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.households.schemas import (
    BlockedOut,
    BlockIn,
    BlockOut,
    CommunityBrief,
    DecisionIn,
    EndIn,
    InvitationOut,
    JoinIn,
    MemberOut,
    MembershipOut,
    RoomBrief,
    StaffMembershipOut,
)
from api.schemas import PathId
from domain.households import invitations, service
from models import Community, Invitation, InvitationState, Membership, MembershipState, Room

resident_router = api_router("/api/v1", tags=[RESIDENT])
staff_router = api_router("/api/v1/staff", tags=[STAFF])
router = APIRouter()


def membership_out(m: Membership) -> MembershipOut:
    out = MembershipOut(
        id=m.id,
        room_id=m.room_id,
        community_id=m.community_id,
        role=m.role,
        state=m.state,
        decision_reason=m.decision_reason,
        move_in=m.move_in,
        move_out=m.move_out,
    )
    room = m.room if isinstance(m.room, Room) else None
    if room is not None:
        out.building, out.unit, out.room = room.building.name, room.unit.name, room.number
    return out


async def decided_out(m: Membership) -> StaffMembershipOut:
    await m.fetch_related("resident", "room__building", "room__unit")
    return staff_membership_out(m)


def staff_membership_out(m: Membership) -> StaffMembershipOut:
    return StaffMembershipOut(
        **membership_out(m).model_dump(),
        resident_id=m.resident_id,
        name=m.resident.name,
        phone=m.resident.phone,
    )


@resident_router.get(
    "/communities",
    response_model=Page[CommunityBrief],
    summary="Communities a resident can ask to join",
)
async def list_joinable_communities(
    _: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[CommunityBrief]:
    rows, nxt = await page_query(Community.all(), cursor, limit)
    items = [
        CommunityBrief(id=c.id, name=c.name, name_en=c.name_en, address=c.address) for c in rows
    ]
    return Page(items=items, next=nxt)


@resident_router.get(
    "/communities/{community_id}/rooms",
    response_model=Page[RoomBrief],
    summary="Find a room to join (by building and unit name)",
)
async def find_rooms(
    community_id: PathId,
    _: ResidentDep,
    building: str = Query(min_length=1, max_length=32),
    unit: str = Query(min_length=1, max_length=32),
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[RoomBrief]:
    query = Room.filter(community_id=community_id, building__name=building, unit__name=unit)
    rows, nxt = await page_query(query, cursor, limit)
    return Page(items=[RoomBrief(id=r.id, number=r.number) for r in rows], next=nxt)


@resident_router.post(
    "/memberships",
    status_code=201,
    response_model=MembershipOut,
    responses=errors(404, 409, 429),
    summary="Ask to join a room",
)
async def join_household(body: JoinIn, resident: ResidentDep) -> MembershipOut:
    m = await service.request_join(resident, body.room_id, body.role, body.note)
    return membership_out(m)


@resident_router.get(
    "/me/memberships",
    response_model=Page[MembershipOut],
    summary="My households and requests, newest first",
)
async def list_my_memberships(
    resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[MembershipOut]:
    rows, nxt = page_list(
        await service.my_memberships(resident), cursor, limit, lambda m: m.id, descending=True
    )
    return Page(items=[membership_out(m) for m in rows], next=nxt)


@resident_router.get(
    "/households/{room_id}/members",
    response_model=Page[MemberOut],
    summary="Members of my household",
)
async def list_household_members(
    room_id: PathId, resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[MemberOut]:
    rows, nxt = page_list(
        await service.household_members(resident, room_id), cursor, limit, lambda m: m.id
    )
    items = [
        MemberOut(membership_id=m.id, resident_id=m.resident_id, name=m.resident.name, role=m.role)
        for m in rows
    ]
    return Page(items=items, next=nxt)


@resident_router.post(
    "/me/memberships/{membership_id}/leave",
    response_model=MembershipOut,
    responses=errors(409),
    summary="Leave a household",
)
async def leave_household(
    membership_id: PathId, resident: ResidentDep, runtime: RuntimeDep
) -> MembershipOut:
    return membership_out(await service.leave_household(runtime, resident, membership_id))


@staff_router.get(
    "/communities/{community_id}/memberships",
    response_model=Page[StaffMembershipOut],
    summary="Membership requests and members, newest first",
)
async def list_memberships(
    community_id: PathId,
    principal: PrincipalDep,
    state: MembershipState | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[StaffMembershipOut]:
    page, nxt = await keyset_page(
        lambda n, before: service.list_memberships(
            principal, community_id, state=state, limit=n, before=before
        ),
        cursor,
        limit,
    )
    return Page(items=[staff_membership_out(m) for m in page], next=nxt)


@staff_router.post(
    "/memberships/{membership_id}/approve",
    response_model=StaffMembershipOut,
    responses=errors(409),
    summary="Approve a membership request",
)
async def approve_membership(
    membership_id: PathId, body: DecisionIn, principal: PrincipalDep, runtime: RuntimeDep
) -> StaffMembershipOut:
    m = await service.decide(principal, membership_id, True, body.reason, runtime)
    return await decided_out(m)


@staff_router.post(
    "/memberships/{membership_id}/reject",
    response_model=StaffMembershipOut,
    responses=errors(409),
    summary="Reject a membership request",
)
async def reject_membership(
    membership_id: PathId, body: DecisionIn, principal: PrincipalDep, runtime: RuntimeDep
) -> StaffMembershipOut:
    m = await service.decide(principal, membership_id, False, body.reason, runtime)
    return await decided_out(m)


@staff_router.post(
    "/memberships/{membership_id}/end",
    response_model=StaffMembershipOut,
    responses=errors(409),
    summary="Move-out: end a membership",
)
async def end_membership(
    membership_id: PathId, body: EndIn, principal: PrincipalDep, runtime: RuntimeDep
) -> StaffMembershipOut:
    m = await service.end_membership(principal, runtime, membership_id, body.reason, body.move_out)
    return await decided_out(m)


@staff_router.post(
    "/communities/{community_id}/residents/{resident_id}/block",
    response_model=BlockedOut,
    summary="Block or unblock a resident (every door refuses them at once)",
)
async def block_resident(
    community_id: PathId,
    resident_id: PathId,
    body: BlockIn,
    principal: PrincipalDep,
    runtime: RuntimeDep,
) -> BlockedOut:
    r = await service.set_blocked(
        principal, runtime.bus, resident_id, community_id, body.blocked, body.reason, runtime
    )
    return BlockedOut(resident_id=resident_id, community_id=community_id, blocked=r)


@staff_router.get(
    "/communities/{community_id}/blocks",
    response_model=Page[BlockOut],
    summary="Residents blocked in this community",
)
async def list_blocks(
    community_id: PathId,
    principal: PrincipalDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[BlockOut]:
    rows, nxt = page_list(
        await service.list_blocks(principal, community_id),
        cursor,
        limit,
        lambda b: b.id,
        descending=True,
    )
    items = [
        BlockOut(
            resident_id=b.resident_id,
            name=b.resident.name,
            phone=b.resident.phone,
            reason=b.reason,
            blocked_by=b.blocked_by_id,
            blocked_at=b.created_at,
        )
        for b in rows
    ]
    return Page(items=items, next=nxt)


def invitation_out(inv: Invitation, for_staff: bool = False) -> InvitationOut:
    room = inv.room if isinstance(inv.room, Room) else None
    community = inv.community if isinstance(inv.community, Community) else None
    return InvitationOut(
        id=inv.id,
        community_id=inv.community_id,
        room_id=inv.room_id,
        role=inv.role,
        state=inv.state.value,
        expires_at=inv.expires_at,
        expired=inv.state == InvitationState.PENDING and inv.expires_at <= utcnow(),
        community=community.name if community else None,
        building=room.building.name if room else None,
        unit=room.unit.name if room else None,
        room=room.number if room else None,
        # What staff typed themselves; never whether the number has an account.
        name=inv.name if for_staff else None,
        phone=inv.phone if for_staff else None,
    )


@resident_router.get(
    "/me/invitations",
    response_model=Page[InvitationOut],
    summary="Invitations to a household for my bound phone number",
)
async def my_invitations(
    resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[InvitationOut]:
    rows, nxt = page_list(
        await invitations.my_invitations(resident), cursor, limit, lambda i: i.id, descending=True
    )
    return Page(items=[invitation_out(i) for i in rows], next=nxt)


@resident_router.post(
    "/me/invitations/{invitation_id}/accept",
    response_model=MembershipOut,
    responses=errors(403, 404, 409),
    summary="Accept an invitation: join the household",
)
async def accept_invitation(invitation_id: PathId, resident: ResidentDep) -> MembershipOut:
    return membership_out(await invitations.accept(resident, invitation_id))


@resident_router.post(
    "/me/invitations/{invitation_id}/decline",
    response_model=InvitationOut,
    responses=errors(404, 409),
    summary="Decline an invitation",
)
async def decline_invitation(invitation_id: PathId, resident: ResidentDep) -> InvitationOut:
    return invitation_out(await invitations.decline(resident, invitation_id))


@staff_router.get(
    "/communities/{community_id}/invitations",
    response_model=Page[InvitationOut],
    summary="Invitations this community sent (import), newest first",
)
async def list_invitations(
    community_id: PathId,
    principal: PrincipalDep,
    state: InvitationState | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[InvitationOut]:
    rows, nxt = page_list(
        await invitations.list_for_staff(principal, community_id, state, 10_000, 0),
        cursor,
        limit,
        lambda i: i.id,
        descending=True,
    )
    return Page(items=[invitation_out(i, for_staff=True) for i in rows], next=nxt)


@staff_router.post(
    "/invitations/{invitation_id}/withdraw",
    response_model=InvitationOut,
    responses=errors(404, 409),
    summary="Withdraw an invitation",
)
async def withdraw_invitation(invitation_id: PathId, principal: PrincipalDep) -> InvitationOut:
    return invitation_out(await invitations.withdraw(principal, invitation_id), for_staff=True)


for _r in (resident_router, staff_router):
    router.include_router(_r)
