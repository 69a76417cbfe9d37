"""Shared response pieces."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# Every primary key is a 32-bit integer column: an id beyond it is a bad request (PostgreSQL
# would refuse the query parameter), never a server error.
INT32_MAX = 2**31 - 1
BodyId = Annotated[int, Field(gt=0, le=INT32_MAX)]
PathId = Annotated[int, Path(gt=0, le=INT32_MAX)]
QueryId = Annotated[int | None, Query(gt=0, le=INT32_MAX)]


_BARE_DATE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def _bare_date(value: Any) -> Any:
    """ "2030-01-01" is a date (a whole day), whatever the union would make of it."""
    if isinstance(value, str) and _BARE_DATE.match(value):
        return date.fromisoformat(value.strip())
    return value


# A time a person gives: with an offset as given; without one, or a bare date (a date
# picker's output), read in the community's zone (anxin.timefmt.from_person).
When = Annotated[datetime | date, BeforeValidator(_bare_date)]


class Strict(BaseModel):
    """Request bodies: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL cannot store U+0000 in text: refuse it here rather than fail later.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        return value


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


class Ok(BaseModel):
    ok: bool = True
