"""Request and response bodies of the police link: agreements, the upload record, police
alerts and outsider tracing. Times in the community's zone (`timezone` beside them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.contract import LocalTime
from api.schemas import BodyId, Strict
from domain.police import agreements, tracing
from models import (
    AgreementState,
    ExportState,
    LegalBasis,
    PoliceAlertState,
    ShareCategory,
    UploadState,
)

Digits20 = Annotated[str, Field(pattern=r"^\d{20}$")]


class AgreementIn(Strict):
    platform_name: str = Field(min_length=1, max_length=100)
    base_url: str = Field(min_length=8, max_length=300)
    system_id: Digits20
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=128)
    center_code: str = Field(pattern=r"^\d{8}$")
    community_code: Digits20
    legal_basis: LegalBasis
    document_no: str = Field(min_length=1, max_length=100)
    categories: list[ShareCategory] = Field(min_length=1, max_length=len(ShareCategory))
    retention_days: int = Field(ge=1, le=agreements.MAX_RETENTION_DAYS)
    approved_by: str = Field(min_length=1, max_length=100)
    rate_limit_per_s: int = Field(500, ge=1, le=10_000)
    notify_url: str = Field("", max_length=300)


class WithdrawIn(Strict):
    reason: str = Field(min_length=2, max_length=200)


class AlertUpdate(Strict):
    state: Literal["acknowledged", "closed"]
    note: str = Field("", max_length=200)


class TraceIn(Strict):
    since: datetime
    until: datetime
    device_ids: list[BodyId] = Field(default_factory=list, max_length=200)
    kinds: list[Literal["resident", "visitor", "rider", "vehicle"]] = Field(
        default_factory=lambda: list(tracing.KINDS), min_length=1, max_length=4
    )
    reason: str = Field(min_length=4, max_length=200)
    case_no: str = Field(min_length=1, max_length=64)


class ExportIn(Strict):
    format: Literal["csv", "xlsx"] = "csv"


class DecisionIn(Strict):
    approve: bool
    note: str = Field("", max_length=200)


class AgreementOut(BaseModel):
    """The terms as anyone allowed to read them sees them (never the password)."""

    id: int
    community_id: int
    platform_name: str
    base_url: str
    system_id: str
    username: str
    center_code: str
    community_code: str
    legal_basis: LegalBasis
    document_no: str
    categories: list[ShareCategory]
    retention_days: int
    approved_by: str
    approved_at: LocalTime | None
    created_by_id: int
    rate_limit_per_s: int
    notify_url: str
    state: AgreementState
    withdrawn_at: LocalTime | None
    withdrawal_reason: str
    timezone: str


class WithdrawnOut(AgreementOut):
    cancelled_uploads: int = Field(description="queued uploads cancelled with the agreement")


class LinkStatusOut(BaseModel):
    agreement: int | None = Field(description="the active agreement's id; null when none")
    registered: bool
    registered_at: LocalTime | None = None
    last_keepalive_at: LocalTime | None = None
    next_register_at: LocalTime | None = None
    last_error: str = ""
    subscribed: bool = False
    uploads: dict[str, int] = Field(description="queued uploads by state")


class UploadOut(BaseModel):
    id: int
    agreement_id: int
    category: ShareCategory
    object_id: str
    source: str
    resident_id: int | None
    state: UploadState
    attempts: int
    status_code: int | None
    last_error: str
    queued_at: LocalTime
    sent_at: LocalTime | None
    fields_sent: list[str]
    timezone: str


class AlertCapture(BaseModel):
    access_event_id: int
    method: str
    occurred_at: LocalTime | None
    plate: str
    has_snapshot: bool


class PoliceAlertOut(BaseModel):
    id: int
    title: str
    title_zh: str
    title_en: str
    state: PoliceAlertState
    notification_id: str
    disposition_id: str
    object_id: str
    trigger_time: LocalTime | None
    device_id: int | None
    door: str
    capture: AlertCapture | None
    note: str
    acknowledged_at: LocalTime | None
    closed_at: LocalTime | None
    created_at: LocalTime | None


class TraceRow(BaseModel):
    event_id: int
    time: LocalTime | None
    door: str
    device_id: int | None
    kind: str
    resident: bool
    method: str
    name: str
    phone: str
    plate: str
    room: str
    pass_id: int | None


class TraceOut(BaseModel):
    query_id: int
    count: int
    truncated: bool = Field(description="more rows matched than one query returns")
    residents: list[TraceRow]
    non_residents: list[TraceRow]


class TraceQueryOut(BaseModel):
    id: int
    staff_id: int
    reason: str
    case_no: str
    since: LocalTime
    until: LocalTime
    device_ids: list[int]
    kinds: list[str]
    result_count: int
    created_at: LocalTime
    timezone: str


class ExportOut(BaseModel):
    id: int
    query_id: int
    requested_by_id: int
    format: Literal["csv", "xlsx"]
    rows: int
    bulk: bool = Field(description="a bulk export waits for a second officer's approval")
    state: ExportState
    approver_id: int | None
    decided_at: LocalTime | None
    decision_note: str
    downloaded_at: LocalTime | None
    timezone: str
