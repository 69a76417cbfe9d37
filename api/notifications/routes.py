"""Notification centre and WeChat subscription reports (residents and staff alike)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from api.deps import PrincipalDep, ResidentDep
from api.errors import request_lang
from api.schemas import Ok, Strict
from domain.notices import service

router = APIRouter(prefix="/api/v1", tags=["notifications"])

# Notification ids are 64-bit: a larger one is a bad request, never a server error.
INT64_MAX = 2**63 - 1
NotificationId = Annotated[int, Path(gt=0, le=INT64_MAX)]


class PreferenceIn(Strict):
    muted: bool


class SubscriptionIn(Strict):
    template_id: str = Field(min_length=1, max_length=64)
    accepted: bool


@router.get("/notifications", summary="My notifications, newest first")
async def list_notifications(
    principal: PrincipalDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 20,
    before_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    unread_only: bool = False,
) -> dict[str, Any]:
    return await service.list_notifications(
        principal,
        limit=limit,
        before_id=before_id,
        unread_only=unread_only,
        lang=request_lang(request),
    )


@router.get("/notifications/unread_count", summary="How many are unread")
async def unread_count(principal: PrincipalDep) -> dict[str, int]:
    return {"unread": await service.unread_count(principal)}


@router.post("/notifications/read_all", summary="Mark every notification read")
async def read_all(principal: PrincipalDep) -> dict[str, int]:
    return {"marked": await service.mark_all_read(principal)}


@router.post("/notifications/{notification_id}/read", response_model=Ok, summary="Mark one read")
async def read_one(notification_id: NotificationId, principal: PrincipalDep) -> Ok:
    await service.mark_read(principal, notification_id)
    return Ok()


@router.get("/notifications/preferences", summary="Which types I muted; mandatory ones")
async def preferences(principal: PrincipalDep, request: Request) -> list[dict[str, Any]]:
    return await service.preferences(principal, request_lang(request))


@router.put(
    "/notifications/preferences/{event_type}",
    summary="Mute or unmute a type (mandatory types refuse muting with 422)",
)
async def set_preference(
    event_type: str, body: PreferenceIn, principal: PrincipalDep
) -> dict[str, Any]:
    return await service.set_preference(principal, event_type, body.muted)


@router.post(
    "/me/subscriptions", summary="Report a wx.requestSubscribeMessage answer for one template"
)
async def report_subscription(body: SubscriptionIn, resident: ResidentDep) -> dict[str, Any]:
    return await service.record_subscription(resident, body.template_id, body.accepted)


@router.get("/me/subscriptions", summary="My one-time WeChat subscription quota per template")
async def my_subscriptions(resident: ResidentDep) -> list[dict[str, Any]]:
    return await service.subscriptions(resident)
