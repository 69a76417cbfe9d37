"""Notification centre and WeChat subscription reports (residents and staff alike)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from api.contract import (
    PAGE_DEFAULT,
    RESIDENT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    errors,
    keyset_page,
    page_list,
)
from api.deps import CallerDep, PrincipalDep, ResidentDep, noted
from api.errors import request_lang
from api.notifications.schemas import (
    Marked,
    NotificationOut,
    NotificationPage,
    PreferenceIn,
    PreferenceOut,
    PreferenceSet,
    SubscriptionIn,
    SubscriptionOut,
    TemplateQuota,
    UnreadCount,
)
from api.schemas import Ok
from domain.notices import service
from models import Notification

shared_router = api_router("/api/v1", tags=[RESIDENT, STAFF])
resident_router = api_router("/api/v1", tags=[RESIDENT])
router = APIRouter()

# Notification ids are 64-bit: a larger one is a bad request, never a server error.
INT64_MAX = 2**63 - 1
NotificationId = Annotated[int, Path(gt=0, le=INT64_MAX)]
EventType = Annotated[str, Path(min_length=1, max_length=64)]


@shared_router.get(
    "/notifications", response_model=NotificationPage, summary="My notifications, newest first"
)
async def list_notifications(
    caller: CallerDep,
    request: Request,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE, description="page size")] = 20,
    unread_only: bool = False,
) -> NotificationPage:
    unread = 0

    async def fetch(n: int, before: int | None) -> list[Notification]:
        # The caller's row, the page and the unread count in one statement; the caller is
        # refused as every route refuses it.
        nonlocal unread
        principal, rows, unread = await service.caller_notification_page(
            caller.subject_type,
            caller.subject_id,
            limit=n,
            before=before,
            unread_only=unread_only,
        )
        noted(request, principal)
        return rows

    rows, nxt = await keyset_page(fetch, cursor, limit)
    return NotificationPage(
        items=[NotificationOut(**n) for n in await service.views(rows, request_lang(request))],
        next=nxt,
        unread=unread,
    )


@shared_router.get(
    "/notifications/unread-count", response_model=UnreadCount, summary="How many are unread"
)
async def count_unread_notifications(request: Request, caller: CallerDep) -> UnreadCount:
    # The caller's row and the count in one statement (a quarter of the mini-program's
    # calls); the caller is refused as every route refuses it.
    principal, unread = await service.caller_unread_count(caller.subject_type, caller.subject_id)
    noted(request, principal)
    return UnreadCount(unread=unread)


@shared_router.post(
    "/notifications/read-all", response_model=Marked, summary="Mark every notification read"
)
async def mark_all_notifications_read(principal: PrincipalDep) -> Marked:
    return Marked(marked=await service.mark_all_read(principal))


@shared_router.post(
    "/notifications/{notification_id}/read", response_model=Ok, summary="Mark one read"
)
async def mark_notification_read(notification_id: NotificationId, principal: PrincipalDep) -> Ok:
    await service.mark_read(principal, notification_id)
    return Ok()


@shared_router.get(
    "/notifications/preferences",
    response_model=Page[PreferenceOut],
    summary="Which types I muted; mandatory ones (in catalogue order)",
)
async def list_notification_preferences(
    principal: PrincipalDep, request: Request, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[PreferenceOut]:
    prefs = await service.preferences(principal, request_lang(request))
    numbered = list(enumerate(prefs, start=1))  # catalogue order is stable: page by position
    rows, nxt = page_list(numbered, cursor, limit, lambda p: p[0])
    return Page(items=[PreferenceOut(**p) for _, p in rows], next=nxt)


@shared_router.put(
    "/notifications/preferences/{event_type}",
    response_model=PreferenceSet,
    summary="Mute or unmute a type (mandatory types refuse muting with 422)",
)
async def set_notification_preference(
    event_type: EventType, body: PreferenceIn, principal: PrincipalDep
) -> PreferenceSet:
    return PreferenceSet(**await service.set_preference(principal, event_type, body.muted))


@resident_router.post(
    "/me/subscriptions",
    response_model=SubscriptionOut,
    responses=errors(404),
    summary="Report a wx.requestSubscribeMessage answer for one template",
)
async def report_subscription(body: SubscriptionIn, resident: ResidentDep) -> SubscriptionOut:
    return SubscriptionOut(
        **await service.record_subscription(resident, body.template_id, body.accepted)
    )


@resident_router.get(
    "/me/subscriptions",
    response_model=Page[TemplateQuota],
    summary="My one-time WeChat subscription quota per template",
)
async def list_my_subscriptions(
    resident: ResidentDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[TemplateQuota]:
    numbered = list(enumerate(await service.subscriptions(resident), start=1))
    rows, nxt = page_list(numbered, cursor, limit, lambda s: s[0])
    return Page(items=[TemplateQuota(**s) for _, s in rows], next=nxt)


for _r in (shared_router, resident_router):
    router.include_router(_r)
