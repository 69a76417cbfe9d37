"""How a notification looks to a client (the API list and the realtime push alike):
times in the community's time zone, text in the reader's language with both kept."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from anxin.settings import get_settings
from anxin.timefmt import local_iso, zone
from models import Community, Notification, Room


async def community_timezones(community_ids: Iterable[int | None]) -> dict[int | None, str]:
    """Each community's IANA zone; the default zone for None or an unknown id."""
    default = get_settings().default_timezone
    ids = sorted({i for i in community_ids if i is not None})
    found: dict[int | None, str] = dict.fromkeys([None, *ids], default)
    if ids:
        rows = await Community.filter(id__in=ids).values("id", "timezone")
        found.update({r["id"]: r["timezone"] or default for r in rows})
    return found


async def community_timezone(community_id: int | None) -> str:
    return (await community_timezones([community_id]))[community_id]


def local_time(at: datetime, tz: str) -> datetime:
    return at.astimezone(zone(tz))


def wechat_time(at: datetime, tz: str) -> str:
    return local_time(at, tz).strftime("%Y-%m-%d %H:%M")


def notification_view(note: Notification, tz: str, lang: str = "zh") -> dict[str, Any]:
    en = lang == "en"
    return {
        "id": note.id,
        "event_type": note.event_type,
        "mandatory": note.mandatory,
        "title": note.title_en if en else note.title_zh,
        "body": note.body_en if en else note.body_zh,
        "title_zh": note.title_zh,
        "title_en": note.title_en,
        "body_zh": note.body_zh,
        "body_en": note.body_en,
        "data": note.data,
        "community_id": note.community_id,
        "timezone": tz,
        "occurred_at": local_iso(note.occurred_at, tz),
        "created_at": local_iso(note.created_at, tz),
        "read": note.read_at is not None,
        "read_at": local_iso(note.read_at, tz),
    }


async def room_label(room_id: int) -> dict[str, str]:
    room = await Room.get_or_none(id=room_id).prefetch_related("building", "unit")
    if room is None:
        return {"room": "-"}
    return {
        "room": f"{room.building.name}{room.unit.name}{room.number}",
        "room_en": f"Bldg {room.building.name} Unit {room.unit.name} Rm {room.number}",
    }
