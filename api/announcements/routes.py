"""Property notices (物业通知) to all or part of a community."""

from __future__ import annotations

from anxin.timefmt import local_iso
from api.announcements.schemas import NoticeIn, NoticeOut
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
from api.schemas import PathId
from domain.announcements import service
from domain.announcements.service import Audience
from models import OutboxEvent

router = api_router("/api/v1/staff", tags=[STAFF])


def notice_out(e: OutboxEvent, tz: str) -> NoticeOut:
    return NoticeOut(
        id=e.id,
        title=str(e.payload.get("title") or ""),
        body=str(e.payload.get("body") or ""),
        rooms=len(e.recipients.get("rooms") or []),
        state=e.state,
        sent_at=local_iso(e.created_at, tz) or "",
        timezone=tz,
    )


@router.post(
    "/communities/{community_id}/notices",
    status_code=201,
    response_model=NoticeOut,
    summary="发布物业通知 · send a notice (in-app, realtime, WeChat)",
)
async def send_notice(community_id: PathId, body: NoticeIn, principal: PrincipalDep) -> NoticeOut:
    audience = Audience(body.building_ids, body.unit_ids, body.room_ids)
    event = await service.send_notice(principal, community_id, body.title, body.body, audience)
    return notice_out(event, await community_tz(community_id))


@router.get(
    "/communities/{community_id}/notices",
    response_model=Page[NoticeOut],
    summary="已发布的物业通知 · notices sent, newest first",
)
async def list_notices(
    community_id: PathId,
    principal: PrincipalDep,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[NoticeOut]:
    rows, nxt = await keyset_page(
        lambda n, before: service.sent_notices(principal, community_id, limit=n, before=before),
        cursor,
        limit,
    )
    tz = await community_tz(community_id)
    return Page(items=[notice_out(e, tz) for e in rows], next=nxt)
