"""Request and response bodies of the notification centre and WeChat subscriptions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.contract import LocalTime, Page
from api.schemas import Strict


class PreferenceIn(Strict):
    muted: bool


class SubscriptionIn(Strict):
    template_id: str = Field(min_length=1, max_length=64)
    accepted: bool


class NotificationOut(BaseModel):
    id: int
    event_type: str
    mandatory: bool
    title: str = Field(description="in the reader's language")
    body: str
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    data: dict[str, Any]
    community_id: int | None
    timezone: str
    occurred_at: LocalTime
    created_at: LocalTime
    read: bool
    read_at: LocalTime | None


class NotificationPage(Page[NotificationOut]):
    unread: int = Field(description="all my unread notifications, not only this page's")


class UnreadCount(BaseModel):
    unread: int


class Marked(BaseModel):
    marked: int


class PreferenceOut(BaseModel):
    event_type: str
    title: str
    title_zh: str
    title_en: str
    mandatory: bool
    muted: bool


class PreferenceSet(BaseModel):
    event_type: str
    muted: bool
    mandatory: bool


class SubscriptionOut(BaseModel):
    template_id: str
    quota: int
    refused: bool


class TemplateQuota(BaseModel):
    template_id: str
    event_types: list[str]
    quota: int
    refused: bool
