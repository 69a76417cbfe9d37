"""Property notices (物业通知) to all or part of a community."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from anxin.timefmt import local_iso
from api.contract import STAFF, api_router
from api.deps import PrincipalDep
from api.schemas import BodyId, PathId, Strict
from domain.announcements import service
from domain.announcements.service import BODY_MAX, TITLE_MAX, Audience
from models import Community, OutboxEvent

router = api_router("/api/v1/staff", tags=[STAFF])


class NoticeIn(Strict):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)
    # All empty: every resident of the community.
    building_ids: list[BodyId] = Field(default_factory=list, max_length=200)
    unit_ids: list[BodyId] = Field(default_factory=list, max_length=500)
    room_ids: list[BodyId] = Field(default_factory=list, max_length=5000)


def notice_out(e: OutboxEvent, tz: str) -> dict[str, Any]:
    return {
        "id": e.id,
        "title": e.payload.get("title"),
        "body": e.payload.get("body"),
        "rooms": len(e.recipients.get("rooms") or []),
        "state": e.state.value,
        "sent_at": local_iso(e.created_at, tz),
    }


@router.post(
    "/communities/{community_id}/notices",
    status_code=201,
    summary="发布物业通知 · send a notice (in-app, realtime, WeChat)",
)
async def send_notice(
    community_id: PathId, body: NoticeIn, principal: PrincipalDep
) -> dict[str, Any]:
    audience = Audience(body.building_ids, body.unit_ids, body.room_ids)
    event = await service.send_notice(principal, community_id, body.title, body.body, audience)
    tz = (await Community.get(id=community_id)).timezone
    return notice_out(event, tz)


@router.get("/communities/{community_id}/notices", summary="已发布的物业通知 · notices sent")
async def list_notices(community_id: PathId, principal: PrincipalDep) -> list[dict[str, Any]]:
    rows = await service.sent_notices(principal, community_id)
    tz = (await Community.get(id=community_id)).timezone
    return [notice_out(e, tz) for e in rows]
