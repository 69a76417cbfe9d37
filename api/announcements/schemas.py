"""Request and response bodies of property notices."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.contract import LocalTime
from api.schemas import BodyId, Strict
from domain.announcements.service import BODY_MAX, TITLE_MAX
from models import OutboxState


class NoticeIn(Strict):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)
    # All empty: every resident of the community.
    building_ids: list[BodyId] = Field(default_factory=list, max_length=200)
    unit_ids: list[BodyId] = Field(default_factory=list, max_length=500)
    room_ids: list[BodyId] = Field(default_factory=list, max_length=5000)


class NoticeOut(BaseModel):
    id: int
    title: str
    body: str
    rooms: int = Field(description="how many rooms it went to (0: the whole community)")
    state: OutboxState = Field(description="delivery: pending until fanned out, then done")
    sent_at: LocalTime
    timezone: str
