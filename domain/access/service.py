"""Reading the access log (staff)."""

from __future__ import annotations

from datetime import date, datetime

from anxin.timefmt import community_period
from auth.permissions import Action, Principal, authorize
from models import AccessEvent, AccessMethod, AccessResult


async def access_events(
    principal: Principal,
    community_id: int,
    *,
    method: AccessMethod | None = None,
    result: AccessResult | None = None,
    resident_id: int | None = None,
    device_id: int | None = None,
    since: datetime | date | None = None,
    until: datetime | date | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AccessEvent]:
    authorize(principal, Action.ACCESS_LOG_READ, community_id)
    since, until = await community_period(community_id, since, until)
    query = AccessEvent.filter(community_id=community_id)
    if method is not None:
        query = query.filter(method=method)
    if result is not None:
        query = query.filter(result=result)
    if resident_id is not None:
        query = query.filter(resident_id=resident_id)
    if device_id is not None:
        query = query.filter(device_id=device_id)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if until is not None:
        query = query.filter(created_at__lt=until)
    return await query.order_by("-id").offset(offset).limit(limit)
