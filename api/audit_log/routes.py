"""Admins read their community's audit log."""

from __future__ import annotations

from typing import Any

from fastapi import Query

from anxin.timefmt import local_iso
from api.contract import STAFF, api_router
from api.deps import PrincipalDep
from api.schemas import PathId
from domain.audit import service
from models import Community

router = api_router("/api/v1/staff", tags=[STAFF])


@router.get("/communities/{community_id}/audit-log", summary="操作日志 · the audit log")
async def audit_log(
    community_id: PathId,
    principal: PrincipalDep,
    action: str = Query("", max_length=64),
    actor_id: int | None = Query(None, gt=0, le=2**31 - 1),
    before_id: int | None = Query(None, gt=0, lt=2**63),
    limit: int = Query(100, ge=1, le=200),
) -> list[dict[str, Any]]:
    rows = await service.read(
        principal, community_id, action=action, actor_id=actor_id, before_id=before_id, limit=limit
    )
    tz = (await Community.get(id=community_id)).timezone
    return [
        {
            "id": r.id,
            "action": r.action,
            "actor_type": r.actor_type,
            "actor_id": r.actor_id,
            "target_type": r.target_type,
            "target_id": r.target_id,
            "details": r.details,
            "request_id": r.request_id,
            "at": local_iso(r.created_at, tz),
        }
        for r in rows
    ]
