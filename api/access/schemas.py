"""Response bodies of the access log and alarms."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.contract import LocalTime
from api.schemas import Strict
from models import AccessMethod, AccessResult, AlarmKind, AlarmState


class AlarmUpdate(Strict):
    state: AlarmState
    note: str = Field("", max_length=200)


class AccessEventOut(BaseModel):
    id: int
    device_id: int | None
    method: AccessMethod
    result: AccessResult
    reason: str = Field(description="stable reason code, e.g. `moved_out`")
    reason_zh: str
    reason_en: str
    resident_id: int | None
    room_id: int | None
    pass_id: int | None
    requested_by_id: int | None
    plate: str
    score: float | None
    snapshot: bool
    command_id: str
    occurred_at: LocalTime
    recorded_at: LocalTime
    timezone: str = Field(description="the community's IANA zone, e.g. Asia/Shanghai")


class AlarmOut(BaseModel):
    id: int
    kind: AlarmKind
    title_zh: str
    title_en: str
    state: AlarmState
    device_id: int | None
    details: dict[str, Any]
    note: str
    created_at: LocalTime
    handled_at: LocalTime | None
    timezone: str
