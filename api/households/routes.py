"""Residents bind to flats; staff decide, end memberships and block residents."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from anxin.clock import utcnow
from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.schemas import BodyId, PathId, Strict
from domain.households import invitations, service
from models import (
    Community,
    Invitation,
    InvitationState,
    Membership,
    MembershipRole,
    MembershipState,
    Room,
)

router = APIRouter(prefix="/api/v1", tags=["households"])


class JoinIn(Strict):
    room_id: BodyId
    role: MembershipRole
    note: str = Field("", max_length=200)


class DecisionIn(Strict):
    reason: str = Field("", max_length=200)


class EndIn(Strict):
    reason: str = Field(min_length=1, max_length=200)
    move_out: date | None = None


class BlockIn(Strict):
    blocked: bool
    reason: str = Field("", max_length=200)


def membership_out(m: Membership, with_resident: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "room_id": m.room_id,
        "community_id": m.community_id,
        "role": m.role.value,
        "state": m.state.value,
        "decision_reason": m.decision_reason,
        "move_in": m.move_in,
        "move_out": m.move_out,
    }
    room = m.room if isinstance(m.room, Room) else None
    if room is not None:
        out.update(building=room.building.name, unit=room.unit.name, room=room.number)
    if with_resident:
        out.update(resident_id=m.resident_id, name=m.resident.name, phone=m.resident.phone)
    return out


@router.get("/communities", summary="Communities a resident can ask to join")
async def communities(_: ResidentDep) -> list[dict[str, Any]]:
    rows = await Community.all().order_by("id").values("id", "name", "name_en", "address")
    return list(rows)


@router.get("/communities/{community_id}/rooms", summary="Find a room to join")
async def rooms(
    community_id: PathId,
    _: ResidentDep,
    building: str = Query(max_length=32),
    unit: str = Query(max_length=32),
) -> list[dict[str, Any]]:
    found = (
        await Room.filter(community_id=community_id, building__name=building, unit__name=unit)
        .order_by("number")
        .values("id", "number")
    )
    return list(found)


@router.post("/memberships", status_code=201, summary="Ask to join a room")
async def join(body: JoinIn, resident: ResidentDep) -> dict[str, Any]:
    m = await service.request_join(resident, body.room_id, body.role, body.note)
    return membership_out(m)


@router.get("/me/memberships", summary="My households and requests")
async def my_memberships(resident: ResidentDep) -> list[dict[str, Any]]:
    return [membership_out(m) for m in await service.my_memberships(resident)]


@router.get("/households/{room_id}/members", summary="Members of my household")
async def members(room_id: PathId, resident: ResidentDep) -> list[dict[str, Any]]:
    rows = await service.household_members(resident, room_id)
    return [
        {
            "membership_id": m.id,
            "resident_id": m.resident_id,
            "name": m.resident.name,
            "role": m.role.value,
        }
        for m in rows
    ]


@router.post("/me/memberships/{membership_id}/leave", summary="Leave a household")
async def leave(
    membership_id: PathId, resident: ResidentDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return membership_out(await service.leave_household(runtime, resident, membership_id))


@router.get("/staff/communities/{community_id}/memberships", tags=["staff"])
async def list_memberships(
    community_id: PathId,
    principal: PrincipalDep,
    state: MembershipState | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    rows = await service.list_memberships(principal, community_id, state, limit, offset)
    return [membership_out(m, with_resident=True) for m in rows]


@router.post("/staff/memberships/{membership_id}/approve", tags=["staff"])
async def approve(
    membership_id: PathId, body: DecisionIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    m = await service.decide(principal, membership_id, True, body.reason, runtime)
    return membership_out(m)


@router.post("/staff/memberships/{membership_id}/reject", tags=["staff"])
async def reject(
    membership_id: PathId, body: DecisionIn, principal: PrincipalDep
) -> dict[str, Any]:
    return membership_out(await service.decide(principal, membership_id, False, body.reason))


@router.post("/staff/memberships/{membership_id}/end", tags=["staff"], summary="Move-out")
async def end(
    membership_id: PathId, body: EndIn, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    m = await service.end_membership(principal, runtime, membership_id, body.reason, body.move_out)
    return membership_out(m)


@router.post("/staff/communities/{community_id}/residents/{resident_id}/block", tags=["staff"])
async def block(
    community_id: PathId,
    resident_id: PathId,
    body: BlockIn,
    principal: PrincipalDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    blocked = await service.set_blocked(
        principal, runtime.bus, resident_id, community_id, body.blocked, body.reason, runtime
    )
    return {"resident_id": resident_id, "community_id": community_id, "blocked": blocked}


@router.get(
    "/staff/communities/{community_id}/blocks",
    tags=["staff"],
    summary="Residents blocked in this community",
)
async def blocks(community_id: PathId, principal: PrincipalDep) -> list[dict[str, Any]]:
    return [
        {
            "resident_id": b.resident_id,
            "name": b.resident.name,
            "phone": b.resident.phone,
            "reason": b.reason,
            "blocked_by": b.blocked_by_id,
            "blocked_at": b.created_at,
        }
        for b in await service.list_blocks(principal, community_id)
    ]


def invitation_out(inv: Invitation, for_staff: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": inv.id,
        "community_id": inv.community_id,
        "room_id": inv.room_id,
        "role": inv.role.value,
        "state": inv.state.value,
        "expires_at": inv.expires_at,
        "expired": inv.state == InvitationState.PENDING and inv.expires_at <= utcnow(),
    }
    room = inv.room if isinstance(inv.room, Room) else None
    if room is not None:
        out.update(building=room.building.name, unit=room.unit.name, room=room.number)
    community = inv.community if isinstance(inv.community, Community) else None
    if community is not None:
        out.update(community=community.name, community_en=community.name_en)
    if for_staff:
        # What staff typed themselves; never whether the number has an account.
        out.update(name=inv.name, phone=inv.phone, decided_at=inv.decided_at)
    return out


@router.get("/me/invitations", summary="Invitations to a household for my bound phone number")
async def my_invitations(resident: ResidentDep) -> list[dict[str, Any]]:
    return [invitation_out(i) for i in await invitations.my_invitations(resident)]


@router.post("/me/invitations/{invitation_id}/accept", summary="Accept: join the household")
async def accept_invitation(invitation_id: PathId, resident: ResidentDep) -> dict[str, Any]:
    return membership_out(await invitations.accept(resident, invitation_id))


@router.post("/me/invitations/{invitation_id}/decline", summary="Decline an invitation")
async def decline_invitation(invitation_id: PathId, resident: ResidentDep) -> dict[str, Any]:
    return invitation_out(await invitations.decline(resident, invitation_id))


@router.get("/staff/communities/{community_id}/invitations", tags=["staff"])
async def list_invitations(
    community_id: PathId,
    principal: PrincipalDep,
    state: InvitationState | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    rows = await invitations.list_for_staff(principal, community_id, state, limit, offset)
    return [invitation_out(i, for_staff=True) for i in rows]


@router.post("/staff/invitations/{invitation_id}/withdraw", tags=["staff"])
async def withdraw_invitation(invitation_id: PathId, principal: PrincipalDep) -> dict[str, Any]:
    return invitation_out(await invitations.withdraw(principal, invitation_id), for_staff=True)
