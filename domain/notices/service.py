"""The notification centre: a person's notifications, read marks, preferences, and the
WeChat subscriptions the mini-program reports."""

from __future__ import annotations

import functools
from typing import Any

from tortoise.expressions import F

from anxin.clock import utcnow
from anxin.errors import Invalid, not_found
from auth.permissions import Principal, load_principal, resident_principal_with
from models import Notification, NotificationPreference, Resident, WeChatSubscription, bulk
from notifications.catalog import CATALOG, Audience, get_type
from notifications.views import community_timezones, notification_view
from notifications.wechat_templates import default_templates

MAX_PAGE = 100


def _mine(principal: Principal) -> dict[str, Any]:
    return {"recipient_type": principal.kind, "recipient_id": principal.id}


async def notification_page(
    principal: Principal, *, limit: int, before: int | None = None, unread_only: bool = False
) -> tuple[list[Notification], int]:
    """Up to `limit` of the caller's notifications, newest first (`before`: the last id
    seen, stable while new ones arrive), and how many are unread: one prepared statement
    (the count joined to the page), read fresh on every request. The ORM built the page's
    query anew each time and the count was a second round trip."""
    rows = await bulk.select(
        Notification,
        _page_sql(before is not None, unread_only),
        [principal.kind, principal.id, principal.kind, principal.id]
        + ([before] if before is not None else [])
        + [limit],
    )
    unread = int(rows[0]["_unread"])
    # A caller with no notification (on this page) gets the count alone: one row of NULLs.
    return [Notification._init_from_db(**r) for r in rows if r["id"] is not None], unread


@functools.cache
def _page_only_sql(before: bool, unread_only: bool) -> str:
    page = (
        f'SELECT {bulk.columns(Notification)} FROM "{Notification._meta.db_table}" '
        'WHERE "recipient_type" = ? AND "recipient_id" = ?'
    )
    if before:
        page += ' AND "id" < ?'
    if unread_only:
        page += ' AND "read_at" IS NULL'
    return page + ' ORDER BY "id" DESC LIMIT ?'


@functools.cache
def _page_sql(before: bool, unread_only: bool) -> str:
    return (
        f'SELECT c."n" AS "_unread", p.* FROM ({_unread_sql()}) c '
        f'LEFT JOIN ({_page_only_sql(before, unread_only)}) p ON 1 = 1 ORDER BY p."id" DESC'
    )


async def views(rows: list[Notification], lang: str) -> list[dict[str, Any]]:
    """The notifications as their reader sees them, each in its community's zone."""
    zones = await community_timezones(n.community_id for n in rows)
    return [notification_view(n, zones[n.community_id], lang) for n in rows]


def _unread_sql() -> str:
    return (
        f'SELECT COUNT(*) AS "n" FROM "{Notification._meta.db_table}" '
        'WHERE "recipient_type" = ? AND "recipient_id" = ? AND "read_at" IS NULL'
    )


async def unread_count(principal: Principal) -> int:
    # One prepared statement: the mini-program asks on every screen (a quarter of its
    # calls), and the ORM builds the same count query anew each time.
    rows = await bulk.select(Notification, _unread_sql(), [principal.kind, principal.id])
    return int(rows[0]["n"])


async def caller_unread_count(subject_type: str, subject_id: int) -> tuple[Principal, int]:
    """Who the access token names (`load_principal`, read now) and how many of their
    notifications are unread. For a resident, the count is a subquery of the statement
    that reads their row (one round trip: the mini-program asks on every screen)."""
    if subject_type != "resident":
        principal = await load_principal(subject_type, subject_id)
        return principal, await unread_count(principal)
    principal, also, _ = await resident_principal_with(
        subject_id, f'({_unread_sql()}) AS "_unread"', ["resident", subject_id]
    )
    return principal, int(also["_unread"])


async def caller_notification_page(
    subject_type: str,
    subject_id: int,
    *,
    limit: int,
    before: int | None = None,
    unread_only: bool = False,
) -> tuple[Principal, list[Notification], int]:
    """`load_principal` and `notification_page`; for a resident in one statement (their
    row, the unread count and the page)."""
    if subject_type != "resident":
        principal = await load_principal(subject_type, subject_id)
        return principal, *await notification_page(
            principal, limit=limit, before=before, unread_only=unread_only
        )
    principal, also, rows = await resident_principal_with(
        subject_id,
        f'({_unread_sql()}) AS "_unread"',
        ["resident", subject_id],
        rows=_page_only_sql(before is not None, unread_only),
        row_values=["resident", subject_id, *([before] if before is not None else []), limit],
    )
    return principal, [Notification._init_from_db(**r) for r in rows], int(also["_unread"])


async def mark_read(principal: Principal, notification_id: int) -> None:
    # Scoped to the caller: someone else's id is "not found", never "forbidden".
    found = await Notification.filter(id=notification_id, **_mine(principal)).exists()
    if not found:
        raise not_found("notification")
    await Notification.filter(id=notification_id, read_at=None).update(read_at=utcnow())


async def mark_all_read(principal: Principal) -> int:
    return await Notification.filter(**_mine(principal), read_at=None).update(read_at=utcnow())


def _types_for(principal: Principal) -> list[str]:
    wanted = {Audience.ANY, Audience.STAFF if principal.is_staff else Audience.RESIDENT}
    return [name for name, t in CATALOG.items() if t.audience in wanted]


async def preferences(principal: Principal, lang: str) -> list[dict[str, Any]]:
    rows = await NotificationPreference.filter(
        subject_type=principal.kind, subject_id=principal.id, muted=True
    ).values_list("event_type", flat=True)
    muted = set(rows)
    out = []
    for name in _types_for(principal):
        t = CATALOG[name]
        out.append(
            {
                "event_type": name,
                "title": t.title_en if lang == "en" else t.title_zh,
                "title_zh": t.title_zh,
                "title_en": t.title_en,
                "mandatory": t.mandatory,
                "muted": name in muted and not t.mandatory,
            }
        )
    return out


async def set_preference(principal: Principal, event_type: str, muted: bool) -> dict[str, Any]:
    if event_type not in _types_for(principal):
        raise not_found("notification type")
    if muted and get_type(event_type).mandatory:
        raise Invalid(
            "notification_mandatory",
            "安全类通知不能关闭",
            "this notification type is mandatory and cannot be muted",
            {"event_type": event_type},
        )
    pref, created = await NotificationPreference.get_or_create(
        subject_type=principal.kind,
        subject_id=principal.id,
        event_type=event_type,
        defaults={"muted": muted},
    )
    if not created and pref.muted != muted:
        pref.muted = muted
        await pref.save(update_fields=["muted"])
    return {"event_type": event_type, "muted": muted, "mandatory": False}


def known_template_ids() -> set[str]:
    return {t.template_id for t in default_templates().values()}


async def record_subscription(
    resident: Resident, template_id: str, accepted: bool
) -> dict[str, Any]:
    """What wx.requestSubscribeMessage answered: "accept" adds one message of quota,
    "reject" means WeChat will refuse until the user accepts again."""
    if template_id not in known_template_ids():
        raise not_found("template")
    sub, _ = await WeChatSubscription.get_or_create(
        resident_id=resident.id, template_id=template_id
    )
    if accepted:
        await WeChatSubscription.filter(id=sub.id).update(quota=F("quota") + 1, refused=False)
    else:
        await WeChatSubscription.filter(id=sub.id).update(quota=0, refused=True)
    await sub.refresh_from_db()
    return {"template_id": template_id, "quota": sub.quota, "refused": sub.refused}


async def subscriptions(resident: Resident) -> list[dict[str, Any]]:
    rows = await WeChatSubscription.filter(resident_id=resident.id).order_by("template_id")
    by_template = {r.template_id: r for r in rows}
    events: dict[str, list[str]] = {}
    for event, t in default_templates().items():
        events.setdefault(t.template_id, []).append(event)
    return [
        {
            "template_id": tid,
            "event_types": sorted(evs),
            "quota": by_template[tid].quota if tid in by_template else 0,
            "refused": by_template[tid].refused if tid in by_template else False,
        }
        for tid, evs in sorted(events.items())
    ]
