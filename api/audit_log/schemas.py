"""Response bodies of the audit log."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.contract import LocalTime


class AuditEntryOut(BaseModel):
    id: int
    action: str = Field(description="e.g. staff.created, police.trace.query")
    actor_type: str = Field(description="staff, resident, device or system")
    actor_id: int | None
    target_type: str
    target_id: str
    details: dict[str, Any]
    request_id: str
    at: LocalTime
    timezone: str
