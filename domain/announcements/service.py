"""Property notices (物业通知): staff tell all or part of a community's residents something
(water off on Tuesday, lift maintenance in building 3). A notice goes through the
notification outbox like every other message, so it reaches each resident in the app's
notification centre, over realtime to an open mini-program, and as a WeChat subscribe
message where the resident subscribed. Who receives it is resolved at delivery: the
approved members of the chosen rooms at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from anxin.errors import invalid, not_found
from auth.permissions import Action, Principal, authorize
from domain import audit
from models import OutboxEvent, Room
from notifications.catalog import EventType
from notifications.outbox import emit

TITLE_MAX, BODY_MAX = 40, 500


@dataclass
class Audience:
    """All of the community when every list is empty; else the union of the parts."""

    building_ids: list[int]
    unit_ids: list[int]
    room_ids: list[int]

    @property
    def everyone(self) -> bool:
        return not (self.building_ids or self.unit_ids or self.room_ids)


async def _rooms(community_id: int, audience: Audience) -> list[int]:
    rooms = Room.filter(community_id=community_id)
    if audience.everyone:
        every: list[Any] = await rooms.values_list("id", flat=True)
        return [int(i) for i in every]
    chosen: set[int] = set()
    for field, ids in (
        ("building_id__in", audience.building_ids),
        ("unit_id__in", audience.unit_ids),
        ("id__in", audience.room_ids),
    ):
        if ids:
            rows: list[Any] = await rooms.filter(**{field: ids}).values_list("id", flat=True)
            found = {int(i) for i in rows}
            if not found:
                raise not_found("room")  # ids of another community do not exist here
            chosen |= found
    return sorted(chosen)


async def send_notice(
    principal: Principal, community_id: int, title: str, body: str, audience: Audience
) -> OutboxEvent:
    authorize(principal, Action.NOTICE_SEND, community_id)
    title, body = title.strip(), body.strip()
    if not title or not body or len(title) > TITLE_MAX or len(body) > BODY_MAX:
        raise invalid(
            "bad_notice",
            f"请填写标题（{TITLE_MAX}字内）和正文（{BODY_MAX}字内）",
            f"a notice needs a title (up to {TITLE_MAX}) and a text (up to {BODY_MAX})",
        )
    rooms = await _rooms(community_id, audience)
    if not rooms:
        raise invalid("no_rooms", "该范围内没有房间", "no rooms in that part of the community")
    # The notice and its audit row: both or neither.
    async with in_transaction():
        event = await emit(
            EventType.PROPERTY_NOTICE.value,
            payload={"title": title, "body": body, "staff_id": principal.id},
            community_id=community_id,
            rooms=rooms,
        )
        await audit.record(
            "notice.sent",
            **principal.audit_actor(),
            community_id=community_id,
            target_type="outbox_event",
            target_id=event.id,
            details={
                "title": title,
                "rooms": len(rooms),
                "everyone": audience.everyone,
                "buildings": audience.building_ids,
                "units": audience.unit_ids,
            },
        )
    return event


async def sent_notices(
    principal: Principal, community_id: int, *, limit: int = 50, before: int | None = None
) -> list[OutboxEvent]:
    """Newest first; `before`: a notice id (the page's keyset cursor)."""
    authorize(principal, Action.NOTICE_SEND, community_id)
    query = OutboxEvent.filter(
        community_id=community_id, event_type=EventType.PROPERTY_NOTICE.value
    )
    if before is not None:
        query = query.filter(id__lt=before)
    return await query.order_by("-id").limit(limit)
