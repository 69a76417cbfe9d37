"""Admins read their community's audit log."""

from __future__ import annotations

from fastapi import Query

from anxin.timefmt import local_iso
from api.audit_log.schemas import AuditEntryOut
from api.contract import (
    PAGE_DEFAULT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    community_tz,
    keyset_page,
)
from api.deps import PrincipalDep
from api.schemas import INT32_MAX, PathId
from domain.audit import service

router = api_router("/api/v1/staff", tags=[STAFF])


@router.get(
    "/communities/{community_id}/audit-log",
    response_model=Page[AuditEntryOut],
    summary="操作日志 · the audit log, newest first",
)
async def audit_log(
    community_id: PathId,
    principal: PrincipalDep,
    action: str = Query("", max_length=64, description='an action, or a prefix ending in "."'),
    actor_id: int | None = Query(None, gt=0, le=INT32_MAX),
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[AuditEntryOut]:
    rows, nxt = await keyset_page(
        lambda n, before: service.read(
            principal, community_id, action=action, actor_id=actor_id, limit=n, before=before
        ),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    items = [
        AuditEntryOut(
            id=r.id,
            action=r.action,
            actor_type=r.actor_type,
            actor_id=r.actor_id,
            target_type=r.target_type,
            target_id=r.target_id,
            details=r.details or {},
            request_id=r.request_id or "",
            at=local_iso(r.created_at, tz) or "",
            timezone=tz,
        )
        for r in rows
    ]
    return Page(items=items, next=nxt)
