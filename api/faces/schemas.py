"""Request and response bodies of faces: consent, enrollment, review, terminal libraries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.contract import LocalTime
from api.schemas import BodyId, Strict
from models import ConsentGiver, ConsentPurpose, EnrollmentMethod, EnrollmentState


class ConsentItem(Strict):
    purpose: ConsentPurpose
    version: int = Field(ge=1, le=1000)


class ConsentIn(Strict):
    community_id: BodyId
    resident_id: BodyId | None = Field(None, description="a child's id when a guardian consents")
    consents: list[ConsentItem] = Field(min_length=1, max_length=3)


class ChallengeIn(Strict):
    community_id: BodyId
    resident_id: BodyId | None = None


class DecisionIn(Strict):
    reason: str = Field("", max_length=200)


class ConsentTextOut(BaseModel):
    purpose: ConsentPurpose
    version: int
    title_zh: str
    title_en: str
    text_zh: str
    text_en: str


class ConsentOut(ConsentTextOut):
    id: int
    resident_id: int
    community_id: int
    given_by: ConsentGiver
    guardian_id: int | None
    witness_staff_id: int | None
    granted_at: LocalTime
    withdrawn_at: LocalTime | None
    timezone: str


class ChallengeOut(BaseModel):
    challenge_id: str
    actions: list[str] = Field(description="perform these, in this order, on camera")
    expires_at: LocalTime
    timezone: str


class SubmittedBy(BaseModel):
    type: str = Field(description="resident | guardian | staff")
    id: int


class EnrollmentOut(BaseModel):
    id: int
    resident_id: int
    community_id: int
    state: EnrollmentState
    method: EnrollmentMethod
    submitted_by: SubmittedBy
    storage_policy: str
    quality: dict[str, Any]
    decision_reason: str
    decided_at: LocalTime | None
    created_at: LocalTime
    photo_held: bool
    server_copy_held: bool
    removed_reason: str
    purge_after: LocalTime | None
    timezone: str


class StaffEnrollmentOut(EnrollmentOut):
    duplicate: bool
    duplicate_of: list[dict[str, Any]]
    liveness: dict[str, Any]
    photo_url: str | None = Field(description="while pending: the photo for the reviewer")


class TerminalLibrary(BaseModel):
    device_id: int
    device_uid: str
    name: str
    online: bool
    intended_version: int
    acked_version: int
    up_to_date: bool
    pending_changes: int
    missing_enrollments: list[int]


class LibraryStatus(BaseModel):
    community_id: int
    version: int
    devices: list[TerminalLibrary]
