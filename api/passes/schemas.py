"""Request and response bodies of visitor and delivery passes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.contract import LocalTime
from api.schemas import BodyId, Strict, When
from models import PassKind, PassState


class PassIn(Strict):
    kind: PassKind = PassKind.VISITOR
    room_id: BodyId | None = None
    visitor_name: str = Field("", max_length=32)
    visitor_phone: str = Field("", max_length=20, pattern=r"^(\+?\d{5,19})?$")
    valid_from: When | None = Field(
        None, description="without an offset, or a bare date: community time"
    )
    valid_until: When | None = Field(None, description="a bare date: the end of that day")
    max_uses: int | None = Field(None, ge=1, le=100)
    door_ids: list[BodyId] | None = Field(None, max_length=20)
    plate: str | None = Field(None, max_length=16)


class PassBase(BaseModel):
    id: int
    kind: PassKind
    community_id: int
    room_id: int
    visitor_name: str
    visitor_phone: str
    plate: str
    valid_from: LocalTime
    valid_until: LocalTime
    timezone: str
    max_uses: int
    uses: int
    doors: list[str] = Field(description="device uids the pass opens; empty: all the household's")
    state: PassState


class PassOut(PassBase):
    share_url: str = Field(description="the visitor's page (relative to the server)")
    qr_png_url: str


class PassWithToken(PassOut):
    token: str = Field(description="the signed pass a gate verifies offline (the QR content)")
    token_chars: int


class StaffPassOut(PassBase):
    """The visitor's phone is masked for staff."""


class AcceptedKey(BaseModel):
    kid: str
    public_key_pem: str
    until: LocalTime | None = Field(
        description="accepted until then (a retired key); null: current"
    )


class PassKey(BaseModel):
    community_id: int
    alg: Literal["EdDSA"]
    public_key_pem: str = Field(description="the key that signs new passes")
    kid: str
    keys: list[AcceptedKey] = Field(description="every key a gate accepts now")
    timezone: str


class PassKeyRotated(BaseModel):
    community_id: int
    kid: str = Field(description="the new signing key")
    keys: list[AcceptedKey]
    timezone: str
