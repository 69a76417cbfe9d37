"""Privacy: a resident's data export; staff deletion report, processing records, face count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder

from anxin.timefmt import local_iso
from api.contract import (
    OPERATOR,
    PAGE_DEFAULT,
    RESIDENT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    keyset_page,
)
from api.deps import PrincipalDep, ResidentDep, SettingsDep
from api.privacy.schemas import DataExport, DeletionReport, FaceCount, ProcessingRecord
from api.schemas import INT32_MAX, PathId
from domain.privacy import service

resident_router = api_router("/api/v1", tags=[RESIDENT])
staff_router = api_router("/api/v1", tags=[STAFF])
operator_router = api_router("/api/v1", tags=[STAFF, OPERATOR])


def record_out(r: dict[str, Any], tz: str) -> ProcessingRecord:
    return ProcessingRecord(**{**r, "at": local_iso(r["at"], tz)})


@resident_router.get(
    "/me/data-export",
    response_model=DataExport,
    summary="Everything the system holds about me (JSON)",
)
async def export_my_data(resident: ResidentDep) -> DataExport:
    return DataExport.model_validate(jsonable_encoder(await service.export_resident(resident)))


@staff_router.get(
    "/staff/communities/{community_id}/privacy/deletions",
    response_model=DeletionReport,
    summary="Retention report: what face data was deleted, when and why",
)
async def get_deletion_report(
    community_id: PathId,
    principal: PrincipalDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> DeletionReport:
    report = await service.deletion_report(principal, community_id, since, until)
    tz = await community_tz(community_id)
    return DeletionReport(
        community_id=report["community_id"],
        timezone=tz,
        summary=report["summary"],
        deletions=[record_out(r, tz) for r in report["deletions"]],
        held_now=report["held_now"],
    )


@staff_router.get(
    "/staff/communities/{community_id}/privacy/records",
    response_model=Page[ProcessingRecord],
    summary="Face-data processing records (who, what, when, why), newest first",
)
async def list_processing_records(
    community_id: PathId,
    principal: PrincipalDep,
    resident_id: int | None = Query(None, gt=0, le=INT32_MAX),
    action: str | None = Query(None, max_length=32),
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[ProcessingRecord]:
    page, nxt = await keyset_page(
        lambda n, before: service.processing_records(
            principal, community_id, resident_id=resident_id, action=action, limit=n, before=before
        ),
        cursor,
        limit,
        key=lambda r: r["id"],
    )
    tz = await community_tz(community_id)
    return Page(items=[record_out(r, tz) for r in page], next=nxt)


@operator_router.get(
    "/staff/privacy/face-count",
    response_model=FaceCount,
    summary="People whose face information is held, with the filing warning",
)
async def get_face_count(principal: PrincipalDep, settings: SettingsDep) -> FaceCount:
    return FaceCount.model_validate(
        await service.face_count(principal, settings.face_count_warning_at)
    )


router = APIRouter()
for _r in (resident_router, staff_router, operator_router):
    router.include_router(_r)
