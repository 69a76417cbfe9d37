"""Request and response bodies of device management (staff)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.contract import LocalTime
from api.schemas import BodyId, Strict
from models import DeviceKind, DeviceStatus, ReplacementState

Transport = Literal["mqtt", "http_push"]
Method = Annotated[str, Field(min_length=1, max_length=16)]


class DeviceIn(Strict):
    kind: DeviceKind
    name: str = Field(min_length=1, max_length=64)
    building_id: BodyId | None = None
    unit_id: BodyId | None = None
    place: str = Field("", max_length=100)
    methods: list[Method] | None = Field(None, max_length=8)
    transport: Transport = "mqtt"


class DeviceUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=64)
    place: str | None = Field(None, max_length=100)
    methods: list[Method] | None = Field(None, max_length=8)


class StatusIn(Strict):
    status: DeviceStatus


class DeviceOut(BaseModel):
    id: int
    device_uid: str
    community_id: int
    kind: DeviceKind
    name: str
    building_id: int | None
    unit_id: int | None
    place: str
    methods: list[str]
    status: DeviceStatus
    online: bool
    last_seen_at: LocalTime | None
    timezone: str
    credential_version: int
    firmware: str
    library_version_acked: int
    transport: str


class DeviceWithSecret(DeviceOut):
    secret: str = Field(description="shown once: configure the device now")
    secret_note: str


class ReplaceIn(Strict):
    new_device_id: BodyId = Field(description="the registered, connected terminal taking over")
    reason: str = Field("", max_length=200)


class ReplacementOut(BaseModel):
    id: int
    community_id: int
    old_device_id: int
    new_device_id: int
    peer_device_id: int | None
    state: ReplacementState
    library_version: int
    chunks: int
    size: int
    error: str
    reason: str
    created_at: LocalTime
    expires_at: LocalTime
    finished_at: LocalTime | None
    timezone: str
