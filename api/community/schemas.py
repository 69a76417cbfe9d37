"""Request and response bodies of the community tree (staff)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import Strict
from models import FaceSelfEnrollment, FaceStoragePolicy


class NameIn(Strict):
    name: str = Field(min_length=1, max_length=32)


class RoomIn(Strict):
    number: str = Field(min_length=1, max_length=16)


class FacePolicyIn(Strict):
    policy: FaceStoragePolicy


class StaffCommunityOut(BaseModel):
    id: int
    name: str
    name_en: str
    timezone: str
    roles: list[str] = Field(description="my roles here")


class Named(BaseModel):
    id: int
    name: str


class RoomOut(BaseModel):
    id: int
    number: str


class UnitTree(Named):
    rooms: list[RoomOut]


class BuildingTree(Named):
    units: list[UnitTree]


class CommunityTree(BaseModel):
    """One community's buildings, units and rooms, by name and number (a document, not a
    list: the console draws it whole)."""

    id: int
    name: str
    name_en: str
    timezone: str
    face_storage_policy: FaceStoragePolicy
    buildings: list[BuildingTree]


class ImportOut(BaseModel):
    """The same for registered and unregistered numbers: it reveals nobody's account."""

    rows: int
    invitations_created: int
    invitations_unchanged: int
    rooms_created: int


class FacePolicyOut(BaseModel):
    id: int
    face_storage_policy: FaceStoragePolicy


class SelfEnrollmentIn(Strict):
    self_enrollment: FaceSelfEnrollment


class SelfEnrollmentOut(BaseModel):
    id: int
    face_self_enrollment: FaceSelfEnrollment
