"""Privacy: a resident's data export; staff deletion report, processing records, face count."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, ResidentDep, SettingsDep
from api.schemas import INT32_MAX, PathId, When
from domain.privacy import service

router = APIRouter(prefix="/api/v1", tags=["privacy"])


@router.get("/me/data-export", summary="Everything the system holds about me (JSON)")
async def data_export(resident: ResidentDep) -> dict[str, Any]:
    return await service.export_resident(resident)


@router.get(
    "/staff/communities/{community_id}/privacy/deletions",
    summary="Retention report: what face data was deleted, when and why",
)
async def deletions(
    community_id: PathId,
    principal: PrincipalDep,
    since: When | None = None,
    until: When | None = None,
) -> dict[str, Any]:
    return await service.deletion_report(principal, community_id, since, until)


@router.get(
    "/staff/communities/{community_id}/privacy/records",
    summary="Face-data processing records (who, what, when, why)",
)
async def records(
    community_id: PathId,
    principal: PrincipalDep,
    resident_id: int | None = Query(None, gt=0, le=INT32_MAX),
    action: str | None = Query(None, max_length=32),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=INT32_MAX),
) -> list[dict[str, Any]]:
    return await service.processing_records(
        principal, community_id, resident_id, action, limit, offset
    )


@router.get(
    "/staff/privacy/face-count",
    summary="People whose face information is held, with the filing warning",
)
async def face_count(principal: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    return await service.face_count(principal, settings.face_count_warning_at)
