"""Request and response bodies of intercom answers, door codes, vehicles, blocklists and
the visitor register."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.contract import LocalTime
from api.schemas import INT32_MAX, Strict
from models import BlockKind, CallState


class CodeIn(Strict):
    code: str = Field(min_length=1, max_length=16)


class VehicleIn(Strict):
    plate: str = Field(min_length=1, max_length=16)


class BlockIn(Strict):
    kind: BlockKind
    reason: str = Field(min_length=1, max_length=200)
    resident_id: int | None = Field(None, gt=0, le=INT32_MAX)
    plate: str | None = Field(None, max_length=16)


class CallOut(BaseModel):
    id: int
    state: CallState
    room_id: int
    room: str = Field(description="the household, as people read it")
    door: str
    device_id: int
    expires_at: LocalTime
    timezone: str
    answered_by_id: int | None


class CallAnswered(CallOut):
    opened: bool = True
    event_id: int | None
    command_id: str


class DoorCodeSet(BaseModel):
    room_id: int
    set: bool = True
    updated_at: LocalTime
    timezone: str


class NewDoorCode(BaseModel):
    room_id: int
    code: str = Field(description="shown once, to this member only")


class VehicleOut(BaseModel):
    id: int
    room_id: int
    plate: str


class BlockOut(BaseModel):
    id: int
    kind: BlockKind
    resident_id: int | None
    plate: str
    reason: str
    active: bool
    created_at: LocalTime
    timezone: str


class VisitOut(BaseModel):
    event_id: int
    time: LocalTime
    timezone: str
    method: str = Field(description="pass | delivery | intercom | code | plate")
    method_zh: str
    method_en: str
    room_id: int | None
    room: str
    visitor_name: str
    visitor_phone: str = Field(description="masked")
    plate: str
    door: str
    pass_id: int | None
    answered_by_id: int | None
