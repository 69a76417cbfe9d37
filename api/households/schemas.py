"""Request and response bodies of households: joining, members, staff decisions."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from api.schemas import BodyId, Strict
from models import MembershipRole, MembershipState


class JoinIn(Strict):
    room_id: BodyId
    role: MembershipRole
    note: str = Field("", max_length=200)


class DecisionIn(Strict):
    reason: str = Field("", max_length=200)


class EndIn(Strict):
    reason: str = Field(min_length=1, max_length=200)
    move_out: date | None = Field(None, description="a date in the community's calendar")


class BlockIn(Strict):
    blocked: bool
    reason: str = Field("", max_length=200)


class CommunityBrief(BaseModel):
    id: int
    name: str
    name_en: str
    address: str


class RoomBrief(BaseModel):
    id: int
    number: str


class MembershipOut(BaseModel):
    id: int
    room_id: int
    community_id: int
    role: MembershipRole
    state: MembershipState
    decision_reason: str
    move_in: date | None
    move_out: date | None
    building: str | None = None
    unit: str | None = None
    room: str | None = None


class StaffMembershipOut(MembershipOut):
    resident_id: int
    name: str
    phone: str | None


class MemberOut(BaseModel):
    membership_id: int
    resident_id: int
    name: str
    role: MembershipRole


class BlockedOut(BaseModel):
    resident_id: int
    community_id: int
    blocked: bool


class BlockOut(BaseModel):
    """A resident blocked in this community (and only here)."""

    resident_id: int
    name: str
    phone: str | None
    reason: str
    blocked_by: int | None
    blocked_at: datetime


class InvitationOut(BaseModel):
    """An invitation into a household; staff also see the name and number they typed."""

    id: int
    community_id: int
    room_id: int
    role: MembershipRole
    state: str
    expires_at: datetime
    expired: bool
    community: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    name: str | None = None
    phone: str | None = None
