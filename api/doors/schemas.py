"""Response bodies of the resident's doors."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import Strict
from models import DeviceKind


class DoorOut(BaseModel):
    id: int
    name: str
    kind: DeviceKind
    community_id: int
    building_id: int | None
    unit_id: int | None
    place: str
    online: bool


class DoorOpened(BaseModel):
    opened: bool = True
    event_id: int | None = Field(description="the access-log entry of this opening")
    command_id: str
    latency_ms: float | None = Field(description="from command to the door's acknowledgement")


class StaffOpenIn(Strict):
    reason: str = Field(min_length=1, max_length=200)
