"""Request and response bodies of login, tokens and who-am-I."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from anxin.i18n import Language
from api.schemas import Strict


class WechatLoginIn(Strict):
    js_code: str = Field(min_length=1, max_length=128)


class StaffLoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=128)


class PhoneIn(Strict):
    code: str = Field(min_length=1, max_length=128)


class LanguageIn(Strict):
    language: Language = Field(description="texts and notifications: zh (中文) or en")


class PhoneOut(BaseModel):
    phone: str | None


class ResidentMe(BaseModel):
    kind: Literal["resident"] = "resident"
    id: int
    name: str
    phone: str | None
    language: Language


class StaffMe(BaseModel):
    kind: Literal["staff"] = "staff"
    id: int
    username: str
    display_name: str
    is_operator: bool
    roles: dict[str, list[str]] = Field(description="community id -> role names")


Me = ResidentMe | StaffMe


class AccountDeleted(BaseModel):
    deleted: bool = True
    communities: list[int] = Field(description="the communities the person left")
