"""Request and response bodies of communities (operators) and staff accounts (admins)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import BodyId, Strict
from models import StaffRoleName


class CommunityIn(Strict):
    city: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    name_en: str = Field("", max_length=64)
    address: str = Field("", max_length=200)
    timezone: str = Field("Asia/Shanghai", max_length=64)


class StaffIn(Strict):
    username: str = Field(min_length=3, max_length=64)
    display_name: str = Field("", max_length=64)
    community_id: BodyId
    roles: list[StaffRoleName] = Field(min_length=1, max_length=4)
    password: str | None = Field(None, min_length=10, max_length=256)


class RolesIn(Strict):
    community_id: BodyId
    roles: list[StaffRoleName] = Field(max_length=4)


class CommunityOut(BaseModel):
    id: int
    city: str | None
    name: str
    name_en: str
    address: str
    timezone: str = Field(description="IANA zone in which its times are shown")


class CommunityHealth(BaseModel):
    """One community's figures today (its own day); null where the caller may not see it."""

    community_id: int
    community: CommunityOut
    entries_today: int | None
    refused_today: int | None
    open_alarms: int | None
    devices_online: int | None
    devices_offline: int | None
    pending_memberships: int | None
    pending_faces: int | None
    faces_held: int | None
    filing_threshold: int = Field(description="faces held above which filing is due")


class StaffOut(BaseModel):
    id: int
    username: str
    display_name: str
    is_active: bool
    is_operator: bool
    roles: dict[str, list[StaffRoleName]] = Field(description="community id -> roles there")


class NewStaffOut(StaffOut):
    password: str = Field(description="shown in this answer only: hand it over")


class PasswordResetOut(BaseModel):
    id: int
    username: str
    password: str = Field(description="temporary, shown once; every session was logged out")
