"""Request and response bodies of access cards."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import BodyId, Strict


class CardIn(Strict):
    resident_id: BodyId
    card_no: str = Field(min_length=4, max_length=64)


class RevokeIn(Strict):
    reason: str = Field("", max_length=200)


class CardOut(BaseModel):
    id: int
    community_id: int
    resident_id: int
    card_no: str = Field(description="normalized (upper-case hex or decimal digits)")
    active: bool
