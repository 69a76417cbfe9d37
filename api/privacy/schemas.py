"""Response bodies of privacy: the data export, deletion report, processing records."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.contract import LocalTime


class DataExport(BaseModel):
    """Everything held about the resident, one section per kind of record. A machine-
    readable archive: its times are UTC (ISO 8601, +00:00), unlike the rest of the API."""

    model_config = ConfigDict(extra="allow")

    format: Literal["anxin.personal-data-export/1"]
    generated_at: str = Field(json_schema_extra={"format": "date-time"})
    resident: dict[str, Any]
    note_zh: str
    note_en: str


class ProcessingRecord(BaseModel):
    id: int
    at: LocalTime
    action: str
    actor_type: str
    actor_id: int | None
    community_id: int | None
    resident_id: int | None
    enrollment_id: int | None
    device_id: int | None
    reason: str
    details: dict[str, Any]


class HeldNow(BaseModel):
    pending_photos: int
    server_embeddings: int
    approved_faces: int
    awaiting_move_out_purge: int


class DeletionReport(BaseModel):
    community_id: int
    timezone: str
    summary: dict[str, int] = Field(description="action:reason -> count")
    deletions: list[ProcessingRecord] = Field(description="oldest first, at most 5,000")
    held_now: HeldNow


class FaceCount(BaseModel):
    scope: Literal["all"] | list[int] = Field(description="all communities, or these")
    people_with_face_data: int
    warning_at: int
    filing_threshold: int
    warning: bool
    message_zh: str
    message_en: str
