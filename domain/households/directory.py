"""The residents' directory staff search: who lives where, and one resident's history."""

from __future__ import annotations

from dataclasses import dataclass, field

from tortoise.expressions import Q

from anxin.errors import not_found
from auth.permissions import POLICY, Action, Principal, authorize
from models import (
    AccessCard,
    AccessEvent,
    FaceEnrollment,
    Membership,
    MembershipState,
    Resident,
    ResidentBlock,
)

PAGE = 50


async def search(
    principal: Principal,
    community_id: int,
    text: str = "",
    state: MembershipState | None = MembershipState.APPROVED,
    offset: int = 0,
) -> list[Membership]:
    """Memberships matching a name, phone or room number (all of them for no text)."""
    authorize(principal, Action.MEMBERSHIP_READ, community_id)
    query = Membership.filter(community_id=community_id)
    if state is not None:
        query = query.filter(state=state)
    text = text.strip()[:64]
    if text:
        query = query.filter(
            Q(resident__name__icontains=text)
            | Q(resident__phone__contains=text)
            | Q(room__number=text)
            | Q(room__building__name=text)
        )
    return (
        await query.order_by("room__building__name", "room__unit__name", "room__number", "id")
        .offset(offset)
        .limit(PAGE + 1)
        .prefetch_related("resident", "room__unit", "room__building")
    )


@dataclass
class History:
    resident: Resident
    memberships: list[Membership]
    events: list[AccessEvent] = field(default_factory=list)
    cards: list[AccessCard] = field(default_factory=list)
    faces: list[FaceEnrollment] = field(default_factory=list)
    block: ResidentBlock | None = None  # blocked in this community (and only here)


def _may(principal: Principal, action: Action, community_id: int) -> bool:
    return bool(principal.roles.get(community_id, set()) & POLICY[action])


async def history(principal: Principal, community_id: int, resident_id: int) -> History:
    """A resident as this community knows them: memberships (past ones too), and what the
    viewer's role may see of their entries, cards and faces."""
    authorize(principal, Action.MEMBERSHIP_READ, community_id)
    memberships = (
        await Membership.filter(community_id=community_id, resident_id=resident_id)
        .order_by("-id")
        .prefetch_related("room__unit", "room__building")
    )
    if not memberships:
        raise not_found("resident")  # not of this community: does not exist here
    out = History(await Resident.get(id=resident_id), memberships)
    out.block = await ResidentBlock.get_or_none(resident_id=resident_id, community_id=community_id)
    if _may(principal, Action.ACCESS_LOG_READ, community_id):
        out.events = (
            await AccessEvent.filter(community_id=community_id, resident_id=resident_id)
            .order_by("-id")
            .limit(30)
        )
    if _may(principal, Action.CARD_MANAGE, community_id):
        out.cards = await AccessCard.filter(
            community_id=community_id, resident_id=resident_id
        ).order_by("-id")
    if _may(principal, Action.FACE_REVIEW, community_id):
        out.faces = await FaceEnrollment.filter(
            community_id=community_id, resident_id=resident_id
        ).order_by("-id")
    return out
